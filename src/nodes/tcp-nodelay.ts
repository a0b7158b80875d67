import { onGreenStatus } from './red';
import type { Node, NodeAPI, NodeDef } from './red';

// TCP_NODELAY for Node-RED's own MQTT connections (core `mqtt-broker` config nodes).
//
// mqtt.js never disables Nagle's algorithm. A chunk server wired between core `mqtt in` and
// `mqtt out` acknowledges a QoS 1 request (a small PUBACK segment) and writes the chunk right
// after it; Nagle holds the chunk until the broker ACKs the PUBACK, and Linux delays that ACK by
// about 40 ms. One device then gets ~23 chunks/s instead of thousands. The package's nodes never
// open their own MQTT connection, so the repository config node turns Nagle off on the broker
// connections the runtime already has, without patching Node-RED or mqtt.js:
//   - on 'flows:started' (every deploy): every mqtt-broker node's current socket;
//   - on any green status of an MQTT node (core sets "connected" on every CONNACK, including
//     reconnects and clients created later by a `connect` action): that node's broker socket.
// Both listeners sit on the runtime's event bus and are removed when the repository closes, so
// redeploys leak nothing; no listener is ever added to an mqtt.js client.

/** The parts of an mqtt.js client (as held by core's mqtt-broker node) this module touches. */
interface MqttClientLike {
  stream?: { setNoDelay?: (noDelay?: boolean) => unknown } | null;
}
interface BrokerNodeLike {
  client?: MqttClientLike | null;
}
interface MqttUserNodeLike {
  brokerConn?: BrokerNodeLike | null;
}
/** Node-RED 4 gives nodes RED.nodes.eachNode; ./red.ts does not declare it. */
type NoDelayRED = NodeAPI & {
  nodes: NodeAPI['nodes'] & { eachNode?: (cb: (def: NodeDef) => void) => void };
};

/** Whether a repository config asks for TCP_NODELAY: on unless explicitly switched off. */
export function tcpNoDelayEnabled(value: unknown): boolean {
  return !(value === false || value === 'false' || value === 0 || value === '0');
}

/**
 * Sets TCP_NODELAY on a broker node's current socket. TCP and TLS sockets have setNoDelay (TLS
 * forwards it to the TCP handle); websocket streams do not (the `ws` library sets it on its own
 * socket), and neither does a client that is not connected: those are skipped.
 * Returns true when setNoDelay was called.
 */
export function applyNoDelay(broker: BrokerNodeLike | null | undefined): boolean {
  const stream = broker?.client?.stream;
  if (!stream || typeof stream.setNoDelay !== 'function') return false;
  try {
    stream.setNoDelay(true);
    return true;
  } catch {
    return false; // a destroyed socket; the next connect brings a new one
  }
}

/** Sets TCP_NODELAY on every mqtt-broker node's current socket in the running flows. */
export function applyToAllBrokers(RED: NodeAPI): number {
  const red = RED as NoDelayRED;
  if (typeof red.nodes.eachNode !== 'function') return 0;
  const ids: string[] = [];
  red.nodes.eachNode((def) => {
    if (def && def.type === 'mqtt-broker') ids.push(def.id);
  });
  let applied = 0;
  for (const id of ids) {
    if (applyNoDelay(red.nodes.getNode(id) as (Node & BrokerNodeLike) | null)) applied++;
  }
  return applied;
}

/**
 * Installs the mechanism for as long as `owner` (the repository config node) lives. A no-op when
 * disabled or when the runtime has no event bus (an older or mocked runtime).
 */
export function installTcpNoDelay(RED: NodeAPI, owner: Node, enabled: unknown = true): void {
  const events = RED.events;
  if (!tcpNoDelayEnabled(enabled) || !events || typeof events.on !== 'function') return;

  const onStarted = () => {
    applyToAllBrokers(RED);
  };
  events.on('flows:started', onStarted);
  const stopStatus = onGreenStatus(RED, (id) => {
    const user = RED.nodes.getNode(id) as (Node & MqttUserNodeLike) | null;
    if (user && user.brokerConn) applyNoDelay(user.brokerConn);
  });
  // The repository may be created after its brokers connected (a redeploy that only changed it).
  onStarted();

  owner.on('close', (_removed, done) => {
    events.removeListener('flows:started', onStarted);
    stopStatus();
    done();
  });
}
