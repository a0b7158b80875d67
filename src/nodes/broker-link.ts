import { filterRegExp } from '../core/topic-filter';
import { onGreenStatus } from './red';
import type { MqttBrokerNode, Node, NodeAPI } from './red';

// A node's own subscription on the connection of a core `mqtt-broker` config node, for a node
// that answers requests itself (chunk-server's "Reply directly").
//
// The node registers as a user of the broker node, as core's mqtt in and out do, so the
// connection opens, closes and shows its state as theirs do. Messages and replies, though, go
// straight through the broker node's mqtt.js client: the broker node's subscribe() and publish()
// cost a device fetching one chunk at a time about a tenth of its round trip on loopback (their
// per-message topic matching and message checks; measured with bench/run.js, see the README).
// The broker node replaces its client after a full disconnect; it tells its users "connected"
// on every connect, and that status event is where the link moves to the current client.

/** The parts of an mqtt.js client (as held by core's mqtt-broker node) the link uses. */
export interface MqttClientLike {
  connected: boolean;
  on(event: 'message', listener: (topic: string, payload: Buffer) => void): unknown;
  on(event: 'connect', listener: () => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  subscribe(filters: string[], options: { qos: 0 | 1 | 2 }): unknown;
  unsubscribe(filters: string[]): unknown;
  publish(topic: string, payload: Buffer | string, options: { qos: 0 | 1 | 2; retain: boolean }): unknown;
}

export interface BrokerLink {
  /** Publishes on the connection; false when it is down (a device asks again). */
  publish(topic: string, payload: Buffer | string, qos: 0 | 1 | 2, retain: boolean): boolean;
  close(removed: boolean, done: () => void): void;
}

type BrokerNode = MqttBrokerNode & { client?: MqttClientLike | null };

/**
 * Subscribes `node` to `filters` at QoS 1 on the broker node's connection and calls `onMessage`
 * for each message on them, until close().
 */
export function linkToBroker(
  RED: NodeAPI,
  node: Node,
  broker: MqttBrokerNode,
  topicFilters: string[],
  onMessage: (topic: string, payload: Buffer) => void,
  share?: string,
): BrokerLink {
  const conn = broker as BrokerNode;
  let client: MqttClientLike | null = null;
  // Messages arrive on their own topics, whatever the subscription: match on the plain filters.
  const ours = filterRegExp(topicFilters);
  // A shared subscription: the broker gives each request to one subscriber of the group, so
  // several Node-REDs share the work (MQTT 5, and mosquitto, EMQX, HiveMQ on 3.1.1 too).
  const filters = share ? sharedFilters(share, topicFilters) : topicFilters;
  const handler = (topic: string, payload: Buffer): void => {
    // The client carries every subscription of the broker node (mqtt in nodes too).
    if (ours.test(topic)) onMessage(topic, payload);
  };
  // QoS 1: a request the broker drops would leave the device waiting out its timeout. Again on
  // every connect: a clean session forgets subscriptions.
  const subscribe = (): void => {
    if (client?.connected) client.subscribe(filters, { qos: 1 });
  };
  const follow = (): void => {
    const current = conn.client ?? null;
    if (current === client) return;
    if (client) {
      client.removeListener('message', handler);
      client.removeListener('connect', subscribe);
    }
    client = current;
    if (!client) return;
    client.on('message', handler);
    client.on('connect', subscribe);
    subscribe();
  };

  const stopFollowing = onGreenStatus(RED, (id) => {
    if (id === node.id) follow();
  });
  // `brokerConn`, as core's mqtt nodes name it: the repository's TCP no delay finds it there.
  (node as Node & { brokerConn?: MqttBrokerNode }).brokerConn = broker;
  broker.register(node); // opens the connection (and creates the client) if this is its first user
  follow();

  return {
    publish(topic, payload, qos, retain) {
      if (!client?.connected) return false;
      client.publish(topic, payload, { qos, retain });
      return true;
    },
    close(removed, done) {
      stopFollowing();
      if (client) {
        client.removeListener('message', handler);
        client.removeListener('connect', subscribe);
        // The connection may serve others after this node is gone: leave nothing subscribed.
        if (client.connected) client.unsubscribe(filters);
        client = null;
      }
      delete (node as Node & { brokerConn?: MqttBrokerNode }).brokerConn;
      broker.deregister(node, done, removed);
    },
  };
}

/** A share group name: what MQTT 5 allows (no '/', '+' or '#'), kept short and printable. */
export const SHARE_GROUP = /^[A-Za-z0-9._-]{1,64}$/;

/** `$share/{group}/{filter}` for each filter; throws on a group name MQTT would misread. */
export function sharedFilters(group: string, filters: string[]): string[] {
  if (!SHARE_GROUP.test(group)) throw new Error(`share group "${group}" must be 1-64 letters, digits, . _ or -`);
  return filters.map((f) => `$share/${group}/${f}`);
}
