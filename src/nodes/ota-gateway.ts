import { PresenceEvent, isDialectName } from '../core/types';
import { OtaGateway, RegistryDirectory, isIdentityMode, isUpstreamProtocol } from '../gateway';
import type { ConnectEvent, DisconnectEvent, SubscribeEvent, ProtocolNotice } from '../gateway';
import { isTopicSafe } from '../core/devices';
import { NodeAPI, Node, NodeDef } from './red';
import { useRepository } from './repository-node';
import { brokerSource, upstreamFromBrokerNode, UpstreamChoice, MqttBrokerConfigNode } from './broker-url';

// ota-gateway: the device front door as a node. Devices connect here instead of to the broker;
// the node authenticates them against the repository's device list and proxies each one to the
// broker in its own namespace (see src/gateway). Output: connect/disconnect/refused events.
// Presence (connect, subscribe, disconnect) also goes to the repository as 'presence' events:
// for Sming and Biotz devices, which report nothing, it is how the rollout tracker learns that
// a device took its notice and restarted into the new firmware.

interface OtaGatewayDef extends NodeDef {
  repository?: string;
  host?: string;
  port?: string | number;
  /** Version 2: the flow's mqtt-broker config node. */
  mqttBroker?: string;
  /** Version 1 (kept for old flows): the broker URL, with the gateway's own credentials. */
  broker?: string;
  version?: number | string;
  namespace?: string;
  identity?: string;
  autoRegister?: string;
  /** The broker's MQTT version for MQTT 5 devices: auto (default), 5, 3.1.1. */
  upstreamProtocol?: string;
  /** Tencent product of devices registered without one (their client id is `{product}{device}`). */
  product?: string;
}

const CLOSE_GUARD_MS = 5000;
const STATUS_EVERY_MS = 500;
const WARN_EVERY_MS = 60_000;

export = function (RED: NodeAPI) {
  /** The broker the gateway proxies to: the mqtt-broker node picked, or an old flow's URL (broker-url.ts). */
  function upstreamFor(config: OtaGatewayDef, node: Node): UpstreamChoice {
    const source = brokerSource(config);
    if (!source) throw new Error(RED._('ota-gateway.errors.noBroker'));
    if ('url' in source) {
      const username = node.credentials?.username || undefined;
      return { url: source.url, username, password: node.credentials?.password || undefined, label: source.url.replace(/\/\/[^@/]*@/, '//') };
    }
    const broker = RED.nodes.getNode(source.node) as MqttBrokerConfigNode | null;
    if (!broker || broker.type !== 'mqtt-broker') throw new Error(RED._('ota-gateway.errors.missingBroker', { id: source.node }));
    return upstreamFromBrokerNode(broker);
  }

  function OtaGatewayNode(this: Node, config: OtaGatewayDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const repoNode = useRepository(RED, node, config.repository);
    if (!repoNode) return;

    const port = Number(config.port ?? 1884);
    const host = (config.host || '0.0.0.0').trim();
    let gateway: OtaGateway;
    let upstream: UpstreamChoice;
    try {
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(RED._('ota-gateway.errors.badPort', { port: String(config.port) }));
      const mode = isIdentityMode(config.identity) ? config.identity : 'auto';
      const autoRegister = isDialectName(config.autoRegister) ? config.autoRegister : undefined;
      const product = config.product?.trim() || undefined;
      if (product !== undefined && !isTopicSafe(product)) throw new Error(RED._('ota-gateway.errors.badProduct', { product }));
      upstream = upstreamFor(config, node);
      const protocol = isUpstreamProtocol(config.upstreamProtocol) ? config.upstreamProtocol : 'auto';
      gateway = new OtaGateway({
        directory: new RegistryDirectory(repoNode.repo.devices, { mode, autoRegister, product }),
        upstream: upstream.url,
        upstreamUsername: upstream.username,
        upstreamPassword: upstream.password,
        upstreamTls: upstream.tls,
        namespace: config.namespace || 'ota',
        upstreamProtocol: protocol === 'auto' && upstream.protocol ? upstream.protocol : protocol,
      });
    } catch (err) {
      node.status({ fill: 'red', shape: 'ring', text: 'ota-gateway.status.badConfig' });
      node.error((err as Error).message);
      return;
    }

    // Many devices come and go at once: show the count at most twice a second.
    let statusTimer: NodeJS.Timeout | undefined;
    const showCount = () => {
      statusTimer = undefined;
      const count = gateway.counters.connected;
      node.status({ fill: count > 0 ? 'green' : 'grey', shape: 'dot', text: RED._('ota-gateway.status.connected', { count }) });
    };
    const scheduleStatus = () => {
      if (!statusTimer) statusTimer = setTimeout(showCount, STATUS_EVERY_MS);
    };

    // A device with a wrong token retries every few seconds: say so once a minute, not each time.
    const warned = new Map<string, number>();
    const warnOnce = (key: string, text: string) => {
      const now = Date.now();
      if ((warned.get(key) ?? 0) > now - WARN_EVERY_MS) return;
      if (warned.size > 1000) warned.clear();
      warned.set(key, now);
      node.warn(text);
    };

    const repo = repoNode.repo;
    const presence = (event: PresenceEvent['event'], e: ConnectEvent, filters?: string[]) => {
      if (!e.deviceId || !isDialectName(e.dialect)) return;
      const ev: PresenceEvent = { device: e.deviceId, dialect: e.dialect, event, ...(filters ? { filters } : {}), session: e.remote, at: repo.now().toISOString() };
      repo.emit('presence', ev);
    };
    gateway.on('change', scheduleStatus);
    gateway.on('connect', (e: ConnectEvent) => {
      presence('connect', e);
      node.send({ topic: 'connect', payload: e });
    });
    gateway.on('subscribe', (e: SubscribeEvent) => presence('subscribe', e, e.filters));
    gateway.on('disconnect', (e: DisconnectEvent) => {
      presence('disconnect', e);
      node.send({ topic: 'disconnect', payload: e });
    });
    gateway.on('refused', (e: { clientId: string; reason: string; remote: string }) => {
      node.send({ topic: 'refused', payload: e });
      warnOnce(`refused:${e.clientId}`, RED._('ota-gateway.warn.refused', { clientId: e.clientId, reason: e.reason, remote: e.remote }));
    });
    gateway.on('denied', (e: { deviceId: string; kind: string; topic: string }) => {
      warnOnce(`denied:${e.deviceId}:${e.kind}:${e.topic}`, RED._('ota-gateway.warn.denied', e));
    });
    gateway.on('error', (err: Error) => node.error(err.message));
    // Already once a minute at most (protocol-bridge.ts).
    gateway.on('protocol', (n: ProtocolNotice) => node.warn(RED._(`ota-gateway.warn.${n.kind}`, { broker: n.broker, how: n.how ?? '' })));

    node.status({ fill: 'yellow', shape: 'ring', text: 'ota-gateway.status.starting' });
    gateway.listen(port, host).then(
      (address) => {
        node.log(RED._('ota-gateway.log.listening', { host: address.address, port: address.port, broker: upstream.label }));
        showCount();
      },
      (err: Error) => {
        node.status({ fill: 'red', shape: 'ring', text: 'ota-gateway.status.listenFailed' });
        node.error(RED._('ota-gateway.errors.listen', { host, port, message: err.message }));
      },
    );

    node.on('close', (_removed, done) => {
      clearTimeout(statusTimer);
      // Devices that never answer our FIN must not hold a redeploy.
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(guard);
        done();
      };
      const guard = setTimeout(finish, CLOSE_GUARD_MS);
      gateway.close().then(finish, finish);
    });
  }

  RED.nodes.registerType('ota-gateway', OtaGatewayNode, {
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });
};
