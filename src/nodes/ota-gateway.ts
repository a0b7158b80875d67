import { isTopicSafe } from '../core/devices';
import { DeviceAttributes, PresenceEvent, isDialectName } from '../core/types';
import { redactUrl } from '../gateway/upstream';
import { LogLimiter, OtaGateway, RegistryDirectory, droppedNote, isIdentityMode, isUpstreamProtocol, resolveLimits } from '../gateway';
import type { ConnectEvent, DisconnectEvent, GatewayLimits, RefusedEvent, SubscribeEvent, ProtocolNotice } from '../gateway';
import { NodeAPI, Node, NodeDef } from './red';
import { useRepository } from './repository-node';
import { brokerSource, upstreamFromBrokerNode, UpstreamChoice, MqttBrokerConfigNode } from './broker-url';
import { rolloutsFor } from '../core/rollouts/service';

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
  /**
   * Defaults for devices registered without them: their topics need them. The Tencent product also
   * tells where a stock device's client id `{product}{device}` ends its product.
   */
  product?: string;
  customer?: string;
  app?: string;
  // Limits (blank: the default); sizes in bytes, times in seconds.
  maxConnectBytes?: string;
  maxPacketBytes?: string;
  maxBufferedBytes?: string;
  topicAliasMaximum?: string;
  maxRefused?: string;
  refusedWindow?: string;
  packetsPerTurn?: string;
  upstreamRetry?: string;
}

/** The node's limit fields as gateway limits: seconds become milliseconds, blanks stay unset. */
function limitsOf(config: OtaGatewayDef): Partial<Record<keyof GatewayLimits, unknown>> {
  const seconds = (v: string | undefined) => (v === undefined || String(v).trim() === '' ? undefined : Number(v) * 1000);
  return {
    maxConnectBytes: config.maxConnectBytes,
    maxPacketBytes: config.maxPacketBytes,
    maxBufferedBytes: config.maxBufferedBytes,
    topicAliasMaximum: config.topicAliasMaximum,
    maxRefused: config.maxRefused,
    refusedWindowMs: seconds(config.refusedWindow),
    packetsPerTurn: config.packetsPerTurn,
    upstreamRetryMs: seconds(config.upstreamRetry),
  };
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
      return { url: source.url, username, password: node.credentials?.password || undefined, label: redactUrl(source.url) };
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
      const attributes: DeviceAttributes = {};
      for (const name of ['product', 'customer', 'app'] as const) {
        const value = (config[name] ?? '').trim();
        if (!value) continue;
        if (!isTopicSafe(value)) throw new Error(RED._('ota-gateway.errors.badAttribute', { name }));
        attributes[name] = value;
      }
      const product = attributes.product;
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
        attributes,
        limits: resolveLimits(limitsOf(config)),
        // Sming's shared notice reaches a device only once its rollout released it.
        noticeGate: rolloutsFor(repoNode.repo).noticeGate,
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

    // A device with a wrong token retries every few seconds: say so once a minute, not each
    // time; and however many devices misbehave, a few lines of each kind per 10 s at most.
    const logs = new LogLimiter(10, 10_000);
    const warnOnce = (kind: string, key: string, text: string) => {
      const dropped = logs.once(kind, key, WARN_EVERY_MS);
      if (dropped !== false) node.warn(text + droppedNote(dropped));
    };

    const repo = repoNode.repo;
    const detachGateway = rolloutsFor(repo).attachGateway();
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
    // The event carries no username or password (a ThingsBoard username is its token).
    gateway.on('refused', (e: RefusedEvent) => {
      node.send({ topic: 'refused', payload: e });
      if (e.deviceId && e.message) warnOnce('refused', e.deviceId, RED._('ota-gateway.warn.incomplete', { deviceId: e.deviceId, clientId: e.clientId, message: e.message }));
      else warnOnce('refused', e.clientId, RED._('ota-gateway.warn.refused', { clientId: e.clientId, reason: e.reason, remote: e.remote }));
    });
    gateway.on('denied', (e: { deviceId: string; kind: string; topic: string }) => {
      // Every Tasmota plug subscribes its group and fallback topics at each connection
      // (docs/tasmota.md): refused by design, counted, not worth a warning per plug. Reaching
      // for a registered device's commands still warns.
      const level = /^cmnd\/([^/]+)\/#$/.exec(e.topic)?.[1];
      if (e.kind === 'subscribe' && level !== undefined && !repo.devices.get(level) && repo.devices.get(e.deviceId)?.dialect === 'tasmota') return;
      warnOnce('denied', `${e.deviceId}:${e.kind}:${e.topic}`, RED._('ota-gateway.warn.denied', e));
    });
    gateway.on('error', (err: Error) => {
      const dropped = logs.allow('error');
      if (dropped !== false) node.error(err.message + droppedNote(dropped));
    });
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
      detachGateway();
      gateway.close().then(finish, finish);
    });
  }

  RED.nodes.registerType('ota-gateway', OtaGatewayNode, {
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });
};
