import type { ConnectionOptions } from 'tls';
import type { UpstreamProtocol } from '../gateway';
import type { Node } from './red';

// Where the gateway node's upstream connections go. Since version 2 of the node, from the flow's
// own core `mqtt-broker` config node (the one its mqtt in / mqtt out nodes use): host, port,
// TLS (its tls-config node), username and password, MQTT 5. Older flows carry a broker URL and
// credentials of the gateway's own, which keep working.

/** The node's config version: 2 added `mqttBroker`. */
export const GATEWAY_CONFIG_VERSION = 2;
/** What a gateway without a broker URL connected to before version 2. */
const V1_DEFAULT_URL = 'mqtt://localhost:1883';

export interface GatewayBrokerDef {
  version?: number | string;
  /** Id of a core mqtt-broker config node (version 2). */
  mqttBroker?: string;
  /** `mqtt://host:port` (version 1, or version 2 without an mqtt-broker node). */
  broker?: string;
}

/** The fields core's mqtt-broker node (10-mqtt.js, setOptions) computes from its config and credentials. */
export interface MqttBrokerConfigNode extends Node {
  brokerurl?: string;
  options?: ConnectionOptions & { username?: string; password?: string | Buffer; protocolVersion?: number };
}

export interface UpstreamChoice {
  url: string;
  username?: string;
  password?: string;
  tls?: ConnectionOptions;
  /** From the mqtt-broker node when it says: `5` for an MQTT 5 broker. */
  protocol?: UpstreamProtocol;
  /** What the log line names (never a password). */
  label: string;
}

/** Which source a gateway definition means, old flows included (the version 1 -> 2 migration). */
export function brokerSource(def: GatewayBrokerDef): { node: string } | { url: string } | null {
  const node = typeof def.mqttBroker === 'string' ? def.mqttBroker.trim() : '';
  if (node) return { node };
  const url = typeof def.broker === 'string' ? def.broker.trim() : '';
  if (url) return { url };
  // A version 1 flow saved without a URL meant the default; a version 2 one must pick a broker.
  return Number(def.version ?? 1) < GATEWAY_CONFIG_VERSION ? { url: V1_DEFAULT_URL } : null;
}

/** The TLS options core's client would use (its tls-config node's CA, certificate, key, servername, verification). */
function tlsFrom(options: NonNullable<MqttBrokerConfigNode['options']>): ConnectionOptions {
  const out: ConnectionOptions = {};
  for (const key of ['ca', 'cert', 'key', 'passphrase', 'servername', 'ALPNProtocols', 'rejectUnauthorized'] as const) {
    if (options[key] !== undefined) (out as Record<string, unknown>)[key] = options[key];
  }
  return out;
}

/**
 * The upstream of a gateway that uses `broker`, an mqtt-broker config node: its URL as core
 * built it (mqtt:// or mqtts://), its credentials, TLS options and protocol. Throws for what
 * the gateway cannot speak (MQTT over WebSockets).
 */
export function upstreamFromBrokerNode(broker: MqttBrokerConfigNode): UpstreamChoice {
  const url = broker.brokerurl ?? '';
  if (!/^(mqtts?|tcp|ssl|tls):\/\//i.test(url)) {
    throw new Error(`the gateway connects to the broker over TCP or TLS: mqtt-broker "${broker.name || broker.id}" is ${url.split('://')[0] || 'not set'}://`);
  }
  const options = broker.options ?? {};
  const secure = /^(mqtts|ssl|tls):/i.test(url);
  const password = options.password === undefined ? undefined : String(options.password);
  return {
    url,
    username: options.username || undefined,
    password: password || undefined,
    ...(secure ? { tls: tlsFrom(options) } : {}),
    // An MQTT 5 mqtt-broker node says the broker speaks 5; 3.1.1 there says only what Node-RED's
    // own client speaks, so the gateway still learns the broker's version for MQTT 5 devices.
    ...(Number(options.protocolVersion) === 5 ? { protocol: '5' as const } : {}),
    label: `${url} (mqtt-broker "${broker.name || broker.id}")`,
  };
}
