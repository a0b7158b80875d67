import * as mqtt from 'mqtt';
import { randomBytes } from 'crypto';
import type { OtaRepository } from '../core/repository';
import { HomeAssistantBridge, haSettings, startInstall } from '../core/homeassistant';
import { upstreamFromBrokerNode, MqttBrokerConfigNode } from './broker-url';
import type { Node, NodeAPI } from './red';

// The repository's opt-in Home Assistant bridge: one MQTT update entity per registered device
// (src/core/homeassistant). It publishes on its own connection to the broker of the mqtt-broker
// node picked in the repository (host, credentials, TLS as that node has them, broker-url.ts),
// because only an own connection can carry the last will that marks every entity unavailable
// when Node-RED goes away. Install commands are taken on that connection only.

export interface HomeAssistantDef {
  haEnabled?: boolean | string;
  haBroker?: string;
  haPrefix?: string;
  haBase?: string;
  haPresence?: boolean | string;
}

const CLOSE_GUARD_MS = 3000;
/** How long after connecting retained configs are read (the broker sends them right after SUBACK). */
const CONFIG_SCAN_MS = 5000;
/** One bridge per repository: two repository nodes sharing a directory would publish every entity twice. */
const running = new WeakSet<OtaRepository>();

function packageVersion(): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('../../package.json') as { version?: string }).version;
  } catch {
    return undefined;
  }
}

type Stop = (done: () => void) => void;

const enabled = (def: HomeAssistantDef) => def.haEnabled === true || def.haEnabled === 'true';

/**
 * Runs the bridge where the fleet is driven: always on files; on a shared database on the
 * holder of the driver lease only, moving with it. One bridge per fleet: with one per Node-RED
 * every entity was published by each, and an Install taken by each. Returns what stops it.
 */
export function runHomeAssistant(RED: NodeAPI, node: Node, repo: OtaRepository, def: HomeAssistantDef): Stop | undefined {
  if (!enabled(def)) return undefined;
  if (!repo.backend) return startHomeAssistant(RED, node, repo, def);
  let stop: Stop | undefined;
  let change = Promise.resolve();
  const onDriving = (driving: boolean) => {
    change = change.then(() => new Promise<void>((resolve) => {
      if (driving && !stop) {
        stop = startHomeAssistant(RED, node, repo, def);
        resolve();
      } else if (!driving && stop) {
        const s = stop;
        stop = undefined;
        s(resolve);
      } else resolve();
    }));
  };
  repo.on('driving', onDriving);
  if (repo.isDriver) onDriving(true);
  return (done) => {
    repo.off('driving', onDriving);
    void change.then(() => {
      const s = stop;
      stop = undefined;
      if (s) s(done);
      else done();
    });
  };
}

/** Starts the bridge when the repository opts in; returns what stops it (undefined: off or not startable). */
export function startHomeAssistant(RED: NodeAPI, node: Node, repo: OtaRepository, def: HomeAssistantDef): Stop | undefined {
  if (!enabled(def)) return undefined;
  if (running.has(repo)) {
    node.warn(RED._('ota-repository.warn.haShared'));
    return undefined;
  }
  let bridge: HomeAssistantBridge;
  let client: mqtt.MqttClient;
  let stopped = false;
  try {
    const settings = haSettings({ prefix: def.haPrefix, base: def.haBase, presence: def.haPresence });
    const broker = def.haBroker ? (RED.nodes.getNode(def.haBroker) as MqttBrokerConfigNode | null) : null;
    if (!broker || broker.type !== 'mqtt-broker') throw new Error(RED._('ota-repository.errors.haBroker'));
    const upstream = upstreamFromBrokerNode(broker);
    const will = { topic: `${settings.base}/bridge/availability`, payload: Buffer.from('offline'), qos: 1 as const, retain: true };
    const options: mqtt.IClientOptions = {
      clientId: `mqtt-ota-ha-${randomBytes(6).toString('hex')}`,
      username: upstream.username,
      password: upstream.password,
      will,
      reconnectPeriod: 5000,
      connectTimeout: 10_000,
    };
    // The mqtt-broker node's TLS options (its tls-config node), as the gateway uses them.
    Object.assign(options, upstream.tls ?? {});
    client = mqtt.connect(upstream.url, options);
    bridge = new HomeAssistantBridge(repo, settings, {
      publish: (topic, payload, retain) => {
        if (!client.connected) return false;
        client.publish(topic, payload, { qos: 1, retain });
        return true;
      },
      install: (device, firmware) => startInstall(repo, device, firmware),
      log: (text) => node.warn(text),
    }, {}, packageVersion());
    let cleanup: ReturnType<typeof setTimeout> | undefined;
    client.on('connect', () => {
      client.subscribe(bridge.commandFilter, { qos: 1 });
      // Another Node-RED's bridge that held the driver lease before may say offline late (its
      // last will, once the broker notices it died): online again, while this one runs.
      client.subscribe(bridge.bridgeTopic, { qos: 1 });
      // For a few seconds, our retained configs: those of devices deleted while we were away go.
      client.subscribe(bridge.configFilter, { qos: 1 });
      clearTimeout(cleanup);
      cleanup = setTimeout(() => client.connected && client.unsubscribe(bridge.configFilter), CONFIG_SCAN_MS);
      client.publish(bridge.bridgeTopic, 'online', { qos: 1, retain: true });
      bridge.resync();
      node.log(RED._('ota-repository.log.haConnected', { url: upstream.label }));
    });
    client.on('close', () => clearTimeout(cleanup));
    client.on('message', (topic, payload, packet) => {
      if (topic === bridge.bridgeTopic) {
        if (!stopped && payload.toString() === 'offline') client.publish(bridge.bridgeTopic, 'online', { qos: 1, retain: true });
        return;
      }
      if (packet.retain) bridge.retainedConfig(topic, payload);
      bridge.command(topic, payload, packet.retain);
    });
    client.on('error', (err) => node.warn(`Home Assistant: ${err.message}`));
    bridge.start();
    running.add(repo);
  } catch (err) {
    node.error(`Home Assistant: ${(err as Error).message}`);
    return undefined;
  }
  return (done) => {
    if (stopped) return;
    stopped = true;
    running.delete(repo);
    bridge.stop();
    const guard = setTimeout(finish, CLOSE_GUARD_MS);
    let finished = false;
    function finish(): void {
      if (finished) return;
      finished = true;
      clearTimeout(guard);
      client.end(true);
      done();
    }
    // A clean close sends no last will: say offline ourselves, then go.
    if (client.connected) client.publish(bridge.bridgeTopic, 'offline', { qos: 1, retain: true }, () => client.end(false, {}, finish));
    else finish();
  };
}
