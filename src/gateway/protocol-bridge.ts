import * as mqtt from 'mqtt-packet';

// MQTT 5 devices in front of a broker that speaks only MQTT 3.1.1 (aedes 1.x, older brokers, or
// a gateway told to). The gateway terminates each device's session, so it speaks 5 to the device
// and 3.1.1 to the broker, mapping what maps and refusing, with a valid MQTT 5 reason code, what
// would change meaning if dropped. Pure functions: upstream-link.ts (CONNECT, CONNACK) and
// relay.ts (every later packet) call them at the session's two edges.
//
// What 3.1.1 cannot carry, and what we do (the README's table says the same):
// - CONNECT: properties dropped; Clean Start + Session Expiry Interval become Clean Session
//   (see connectUp); will properties dropped (the will is published at once, not after a delay).
//   An authentication method is refused at CONNECT for every MQTT 5 device (0x8C), whatever the
//   broker: the gateway authenticates devices itself and runs no AUTH exchange.
// - PUBLISH: user properties, content type, payload format indicator and (non-retained) message
//   expiry are annotations: dropped and counted, the message itself arrives. Response topic and
//   correlation data are refused (0x83): without them the receiver cannot answer, so the request
//   would be delivered unanswerable. A retained message with an expiry is refused (0x83): the
//   broker would keep it for ever.
// - SUBSCRIBE: no-local, retain-as-published, retain handling 2, and retain handling 1 on a filter
//   the device already holds are refused per filter (0x83): a 3.1.1 broker would echo the device's
//   own messages, clear the retain flag, resend retained messages. Retain handling 1 on a new
//   filter is what 3.1.1 does anyway. `$share/` filters: 0x9E; a subscription identifier: 0xA1.
// - Acknowledgements carry no reason codes upstream; a 3.1.1 broker gives none down (success).
// - UNSUBACK: 0x00 per filter. DISCONNECT 0x04 (with will): the upstream connection is dropped
//   without DISCONNECT, so the broker publishes the will as the device asked.

export type UpstreamProtocol = 'auto' | '5' | '3.1.1';
export const UPSTREAM_PROTOCOLS: readonly UpstreamProtocol[] = ['auto', '5', '3.1.1'];
export const isUpstreamProtocol = (v: unknown): v is UpstreamProtocol => UPSTREAM_PROTOCOLS.includes(v as UpstreamProtocol);

export type Version = 3 | 4 | 5;

/** MQTT 5 reason codes the bridge itself writes. */
export const RC = {
  success: 0x00,
  unspecified: 0x80,
  protocolError: 0x82,
  implementationSpecific: 0x83,
  unsupportedProtocolVersion: 0x84,
  badAuthenticationMethod: 0x8c,
  sharedSubscriptionsNotSupported: 0x9e,
  subscriptionIdentifiersNotSupported: 0xa1,
  disconnectWithWill: 0x04,
} as const;

/** MQTT 3.1.1 CONNACK return codes 1-5 as MQTT 5 reason codes (5.0 section 3.2.2.2). */
const CONNACK_V4_TO_V5: Record<number, number> = {
  0: 0x00,
  1: 0x84, // unacceptable protocol version -> unsupported protocol version
  2: 0x85, // identifier rejected -> client identifier not valid
  3: 0x88, // server unavailable
  4: 0x86, // bad user name or password
  5: 0x87, // not authorized
};

export function connackCodeV4toV5(returnCode: number): number {
  return CONNACK_V4_TO_V5[returnCode] ?? RC.unspecified;
}

/** 3.1.1 return code 1: the broker does not speak the protocol version we asked for. */
export const UNACCEPTABLE_PROTOCOL_VERSION = 1;

// ---- device (MQTT 5) to broker (MQTT 3.1.1) -------------------------------------------------

export interface ConnectUp {
  packet: mqtt.IConnectPacket;
  /** Properties (and will properties) the broker will never see. */
  dropped: string[];
  /** The Session Expiry Interval to state in CONNACK when it differs from the device's. */
  sessionExpiry?: number;
}

/**
 * MQTT 5 CONNECT as 3.1.1. Clean Session (3.1.1) both starts fresh and ends the session with the
 * connection; MQTT 5 splits that into Clean Start and Session Expiry Interval (SEI):
 * - SEI 0: nothing outlives the connection -> clean. A device that asked to resume (Clean Start
 *   0) hears "no session present", which MQTT 5 allows.
 * - SEI > 0, Clean Start 0: resume and keep -> not clean; the broker's own expiry (mosquitto's
 *   persistent_client_expiration, none by default) replaces the SEI.
 * - SEI > 0, Clean Start 1: 3.1.1 cannot start fresh and keep: clean, and the CONNACK says
 *   Session Expiry Interval 0 so the device knows its session ends with the connection.
 */
export function connectUp(connect: mqtt.IConnectPacket): ConnectUp {
  const dropped: string[] = [];
  const props = connect.properties ?? {};
  const expiry = props.sessionExpiryInterval ?? 0;
  const cleanStart = connect.clean !== false;
  for (const [name, value] of Object.entries(props)) {
    // The gateway handles these itself (expiry above; aliases and packet size in the session).
    if (value === undefined || ['sessionExpiryInterval', 'topicAliasMaximum', 'maximumPacketSize'].includes(name)) continue;
    dropped.push(name);
  }
  const out: mqtt.IConnectPacket = { ...connect, protocolId: 'MQTT', protocolVersion: 4, clean: expiry === 0 || cleanStart };
  delete out.properties;
  if (connect.will) {
    const { properties, ...will } = connect.will;
    for (const [name, value] of Object.entries(properties ?? {})) if (value !== undefined) dropped.push(`will.${name}`);
    out.will = will;
  }
  return { packet: out, dropped, sessionExpiry: expiry > 0 && cleanStart ? 0 : undefined };
}

export type PublishUp =
  | { packet: mqtt.IPublishPacket; dropped: string[]; refuse?: undefined; why?: undefined }
  | { packet?: undefined; dropped?: undefined; refuse: number; why: string };

/** One MQTT 5 PUBLISH (topic already rewritten, alias resolved) as 3.1.1. */
export function publishUp(publish: mqtt.IPublishPacket): PublishUp {
  const props = publish.properties ?? {};
  if (props.responseTopic !== undefined || props.correlationData !== undefined) {
    return { refuse: RC.implementationSpecific, why: 'response topic and correlation data: an MQTT 3.1.1 broker carries neither, the receiver could not answer' };
  }
  if (publish.retain && props.messageExpiryInterval !== undefined) {
    return { refuse: RC.implementationSpecific, why: 'retained message with an expiry: an MQTT 3.1.1 broker would keep it for ever' };
  }
  const dropped = Object.entries(props)
    .filter(([name, value]) => value !== undefined && name !== 'topicAlias')
    .map(([name]) => name);
  const { cmd, topic, payload, qos, retain, dup, messageId } = publish;
  return { packet: { cmd, topic, payload, qos, retain, dup, messageId }, dropped };
}

/**
 * The MQTT 5 reason code refusing one subscription a 3.1.1 broker cannot honour, or null.
 * `held`: the device already holds this exact filter (retain handling 1 then means "no retained
 * messages", which a 3.1.1 broker would resend).
 */
export function refuseSubscription(sub: mqtt.ISubscription, packet: mqtt.ISubscribePacket, held: boolean): number | null {
  if (packet.properties?.subscriptionIdentifier !== undefined) return RC.subscriptionIdentifiersNotSupported;
  if (sub.topic.startsWith('$share/')) return RC.sharedSubscriptionsNotSupported;
  if (sub.nl || sub.rap || sub.rh === 2 || (sub.rh === 1 && held)) return RC.implementationSpecific;
  return null;
}

/** SUBSCRIBE as 3.1.1: QoS only per filter, no properties. */
export function subscribeUp(packet: mqtt.ISubscribePacket): mqtt.ISubscribePacket {
  return { cmd: 'subscribe', messageId: packet.messageId, subscriptions: packet.subscriptions.map(({ topic, qos }) => ({ topic, qos })) };
}

export type Upward = { packet: mqtt.Packet } | { abort: string } | { disconnect: number; why: string };

/**
 * Any other device packet on its way to a 3.1.1 broker. Acknowledgements and DISCONNECT lose
 * their reason codes and properties; DISCONNECT 0x04 (disconnect with will) becomes an abort, so
 * the broker publishes the will; AUTH never reaches here (refused in session for every v5 device).
 */
export function otherUp(packet: mqtt.Packet): Upward {
  switch (packet.cmd) {
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return { packet: { cmd: packet.cmd, messageId: packet.messageId } as mqtt.Packet };
    case 'unsubscribe':
      return { packet: { cmd: 'unsubscribe', messageId: packet.messageId, unsubscriptions: packet.unsubscriptions } };
    case 'disconnect':
      if (packet.reasonCode === RC.disconnectWithWill) return { abort: 'device disconnected with its will (0x04)' };
      return { packet: { cmd: 'disconnect' } };
    case 'auth':
      return { disconnect: RC.protocolError, why: 'AUTH without an authentication method' };
    default:
      return { packet };
  }
}

// ---- broker (MQTT 3.1.1) to device (MQTT 5) -------------------------------------------------

/**
 * A 3.1.1 CONNACK as MQTT 5, with the properties the gateway must state for a broker that cannot:
 * no shared subscriptions (3.1.1 has none; aedes none at all), no subscription identifiers, and
 * the session expiry actually granted when it differs. Topic aliases are off (absent = 0) and no
 * maximum packet size is known (absent = none); retain and wildcards are mandatory in 3.1.1.
 */
export function connackDown(packet: mqtt.IConnackPacket, sessionExpiry?: number): mqtt.IConnackPacket {
  const reasonCode = connackCodeV4toV5(packet.returnCode ?? 0);
  if (reasonCode !== 0) return { cmd: 'connack', sessionPresent: false, reasonCode };
  const properties: NonNullable<mqtt.IConnackPacket['properties']> = {
    retainAvailable: true,
    wildcardSubscriptionAvailable: true,
    sharedSubscriptionAvailable: false,
    subscriptionIdentifiersAvailable: false,
  };
  if (sessionExpiry !== undefined) properties.sessionExpiryInterval = sessionExpiry;
  return { cmd: 'connack', sessionPresent: packet.sessionPresent, reasonCode, properties };
}

/** 3.1.1 UNSUBACKs carry no codes; MQTT 5 wants one per filter the device named. */
export function unsubackDown(packet: mqtt.IUnsubackPacket, count: number): mqtt.IUnsubackPacket {
  return { cmd: 'unsuback', messageId: packet.messageId, granted: new Array<number>(count).fill(RC.success) };
}

/**
 * True when a PUBLISH would exceed the device's Maximum Packet Size. MQTT 5 says the server must
 * then drop it and act as if delivered (3.1.2.11.4); a 5 broker does that itself, a 3.1.1 one
 * knows nothing of the limit, so the gateway does.
 */
export function exceedsPacketSize(packet: mqtt.IPublishPacket, maximum: number | undefined): boolean {
  if (!maximum) return false;
  // Cheap bound first: the payload alone.
  if (Buffer.byteLength(packet.payload) > maximum) return true;
  return mqtt.generate(packet, { protocolVersion: 5 }).length > maximum;
}

// ---- per gateway: which version the broker speaks ------------------------------------------

export interface BridgeCounters {
  /** Device connections bridged from MQTT 5 to 3.1.1. */
  bridged: number;
  /** Properties dropped on the way up, by name. */
  dropped: Record<string, number>;
  /** Packets or filters refused because 3.1.1 cannot carry them. */
  refused: number;
}

export interface ProtocolNotice {
  kind: 'bridging' | 'refused-v5' | 'refused-v4';
  broker: string;
  /** For `bridging`: how the broker refused MQTT 5. */
  how?: string;
  /** The whole line in English (the node logs its own translation of kind, broker and how). */
  message: string;
}

const NOTICE_EVERY_MS = 60_000;

/**
 * What the gateway knows of its broker's protocol. In `auto` the first MQTT 5 device's CONNECT
 * goes up as MQTT 5; a broker that answers "unacceptable protocol version" (3.1.1 return code 1,
 * what aedes 1.x sends before closing) or closes without any CONNACK is taken to speak 3.1.1
 * only, and every MQTT 5 device after that is bridged. 3.1.1 devices always go up as 3.1.1.
 */
export class BrokerProtocol {
  readonly counters: BridgeCounters = { bridged: 0, dropped: {}, refused: 0 };
  private learned?: 4 | 5;
  private readonly lastNotice = new Map<string, number>();

  constructor(
    readonly mode: UpstreamProtocol,
    private readonly broker: string,
    private readonly notify: (notice: ProtocolNotice) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** The version to ask the broker for on behalf of a device speaking `device`. */
  upstreamVersion(device: Version): Version {
    if (device !== 5) return device;
    if (this.mode === '3.1.1') return 4;
    if (this.mode === '5') return 5;
    return this.learned ?? 5;
  }

  /** True while `auto` has not yet seen the broker answer an MQTT 5 CONNECT. */
  get probing(): boolean {
    return this.mode === 'auto' && this.learned === undefined;
  }

  /** The broker answered an MQTT 5 CONNECT with this code (reasonCode, or 3.1.1 returnCode). */
  answeredV5(code: number): void {
    if (code === UNACCEPTABLE_PROTOCOL_VERSION) {
      if (this.mode === 'auto') this.learnV4('answered CONNACK 1, unacceptable protocol version');
      else this.notice('refused-v5', undefined, `broker ${this.broker} refuses MQTT 5 (CONNACK 1, unacceptable protocol version): MQTT 5 devices are refused with 0x84. Set the gateway's upstream protocol to auto or 3.1.1 (CLI: --upstream-protocol) to bridge them to MQTT 3.1.1.`);
      return;
    }
    if (this.mode === 'auto' && this.learned === undefined) this.learned = 5;
  }

  /** The broker closed an MQTT 5 CONNECT without any CONNACK, then answered the same as 3.1.1. */
  closedV5ThenAnswered(): void {
    // A close is weaker evidence than an answer: never overrides a broker heard speaking 5.
    if (this.probing) this.learnV4('closed the connection without CONNACK');
  }

  /** The broker refused a 3.1.1 CONNECT as an unacceptable protocol version. */
  refusedV4(): void {
    this.notice('refused-v4', undefined, `broker ${this.broker} refuses MQTT 3.1.1 (CONNACK 1): MQTT 3.1.1 devices cannot reach it through the gateway${this.mode === '3.1.1' ? '; set the upstream protocol to auto or 5 for MQTT 5 devices' : ''}.`);
  }

  private learnV4(how: string): void {
    const changed = this.learned !== 4;
    this.learned = 4;
    if (changed) {
      this.notice('bridging', how, `broker ${this.broker} ${how} to MQTT 5: MQTT 5 devices are bridged to MQTT 3.1.1 (user properties, content type, payload format, message expiry dropped; response topic, correlation data, no-local, retain-as-published and retain-handling subscriptions refused with 0x83). Use an MQTT 5 broker to carry them, or set the upstream protocol to 3.1.1 to skip the probe.`);
    }
  }

  /** Counts what was dropped on the way up. */
  dropped(names: readonly string[]): void {
    for (const name of names) this.counters.dropped[name] = (this.counters.dropped[name] ?? 0) + 1;
  }

  /** One line per kind per minute, however many devices retry. */
  private notice(kind: ProtocolNotice['kind'], how: string | undefined, message: string): void {
    const now = this.now();
    const last = this.lastNotice.get(kind);
    if (last !== undefined && now - last < NOTICE_EVERY_MS) return;
    this.lastNotice.set(kind, now);
    this.notify({ kind, broker: this.broker, ...(how ? { how } : {}), message });
  }
}
