import * as net from 'net';
import * as mqtt from 'mqtt-packet';
import { AuthFailure, DeviceIdentity } from './directory';
import { PacedReader, PacketTooLarge } from './framing';
import { generatedClientId, upstreamClientId } from './identity';
import { WindowCounter } from './limits';
import { printable } from './log-limit';
import { IncompleteIdentityError, NamespacePolicy, TopicPolicy } from './policy';
import * as bridge from './protocol-bridge';
import { withValidReasonCodes } from './reason-codes';
import { SubscriptionBook } from './subscriptions';
import type { GatewayContext } from './gateway';

// One device connection and its own upstream connection. The device's packets go up rewritten
// by its TopicPolicy; the broker's come down with the device's topics restored. The gateway never
// originates packets on the upstream leg (its packet ids belong to the device); it only answers
// the device itself where it refuses something.

type Version = 3 | 4 | 5;

export const NOT_AUTHORIZED_V5 = 0x87;
const PROTOCOL_ERROR_V5 = 0x82;
const PACKET_TOO_LARGE_V5 = 0x95;
const TOPIC_ALIAS_INVALID_V5 = 0x94;
const MAX_QUEUED = 1000;
/** Broker CONNACK codes that mean "not now": the CONNECT is tried again, not passed down. */
const BROKER_UNAVAILABLE = { v4: [3], v5: [0x88, 0x89] };

/** The CONNACKs the gateway itself refuses with. "Unavailable" has none: see link(). */
export const CONNACK_CODES: Record<AuthFailure | 'identifier_rejected' | 'bad_auth_method', { v4: number; v5: number }> = {
  bad_credentials: { v4: 4, v5: 0x86 },
  not_authorized: { v4: 5, v5: 0x87 },
  identifier_rejected: { v4: 2, v5: 0x85 },
  // MQTT 5 enhanced authentication: the gateway authenticates devices itself, with no AUTH exchange.
  bad_auth_method: { v4: 4, v5: bridge.RC.badAuthenticationMethod },
};

export class DeviceSession {
  readonly remote: string;
  device?: DeviceIdentity;
  clientId = '';
  /** linking: authenticated, waiting for the broker's CONNACK (held, and retried, while the broker is down). */
  private state: 'connecting' | 'authenticating' | 'linking' | 'open' | 'closed' = 'connecting';
  private version: Version = 4;
  /** The broker side's own version: 3.1.1 for an MQTT 5 device when the broker lacks 5 (protocol-bridge.ts). */
  private upVersion: Version = 4;
  /** This device's MQTT 5 CONNECT is how a gateway in `auto` learns whether the broker speaks 5. */
  private probing = false;
  /** The MQTT 5 CONNECT went up and the broker closed without CONNACK: this is the 3.1.1 retry. */
  private retriedAfterClose = false;
  private sessionExpiry?: number;
  private deviceMaxPacket?: number;
  private reportedBadCode = false;
  private policy?: TopicPolicy;
  private upstream?: net.Socket;
  private readonly parser = mqtt.parser();
  private readonly reader: PacedReader;
  /** Size of the packet being parsed (the framer's), for the queue's byte count. */
  private packetBytes = 0;
  private queue: mqtt.Packet[] = [];
  private queuedBytes = 0;
  private readonly refusals: WindowCounter;
  private subscriptions?: SubscriptionBook;
  /** QoS 2 publishes refused in MQTT 3.1.1: their PUBREL is answered here, not upstream. */
  private readonly refusedQos2 = new Set<number>();
  /** QoS 2 messages dropped on the way down: their PUBREL is answered here. */
  private readonly droppedQos2 = new Set<number>();
  private readonly aliasesUp = new Map<number, string>();
  private readonly aliasesDown = new Map<number, string>();
  private connackSent = false;
  private connect?: mqtt.IConnectPacket;
  private linkDeadline = 0;
  private linkAttempts = 0;
  private linkTimer?: NodeJS.Timeout;
  /** True once the gateway counted this device as connected. */
  private announced = false;
  private connectTimer?: NodeJS.Timeout;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: GatewayContext,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => this.close('no CONNECT in time'), ctx.connectTimeoutMs);
    this.connectTimer.unref();
    const limits = ctx.limits;
    this.refusals = new WindowCounter(limits.maxRefused, limits.refusedWindowMs);
    this.parser.on('packet', (packet) => this.fromDevice(packet));
    this.parser.on('error', (err: Error) => this.malformed(err.message));
    // Until the device is authenticated only a CONNECT-sized packet is read.
    this.reader = new PacedReader(socket, limits.maxConnectBytes, limits.packetsPerTurn, {
      packet: (bytes) => {
        this.packetBytes = bytes.length;
        try {
          this.parser.parse(bytes);
        } catch (err) {
          this.malformed((err as Error).message);
        }
      },
      error: (err) => this.tooLarge(err),
      turnStart: () => this.upstream?.cork(),
      turnEnd: () => {
        const up = this.upstream;
        up?.uncork();
        return [up, socket].filter((s): s is net.Socket => !!s && !s.destroyed && s.writableNeedDrain);
      },
    });
    socket.on('error', () => this.close('device socket error'));
    socket.on('close', () => this.close('device closed'));
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  // ---- device to broker -------------------------------------------------------------------

  private fromDevice(packet: mqtt.Packet): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      if (packet.cmd !== 'connect') return this.malformed(`expected CONNECT, got ${packet.cmd.toUpperCase()}`);
      this.onConnect(packet);
      return;
    }
    if (this.state === 'authenticating' || this.state === 'linking') {
      this.queuedBytes += this.packetBytes;
      if (this.queue.length >= MAX_QUEUED || this.queuedBytes > this.ctx.limits.maxBufferedBytes) {
        return this.close(`over ${MAX_QUEUED} packets or ${this.ctx.limits.maxBufferedBytes} bytes before the broker accepted the connection`);
      }
      this.queue.push(packet);
      return;
    }
    switch (packet.cmd) {
      case 'connect':
        return this.malformed('second CONNECT');
      case 'publish':
        return this.devicePublish(packet);
      case 'subscribe':
        return this.deviceSubscribe(packet);
      case 'unsubscribe':
        return this.deviceUnsubscribe(packet);
      case 'auth':
        // No authentication method was accepted at CONNECT, so an AUTH is a protocol error (5.0 4.12).
        return this.disconnect(bridge.RC.protocolError, 'AUTH without an authentication method');
      case 'pubrel':
        if (packet.messageId !== undefined && this.refusedQos2.delete(packet.messageId)) {
          this.toDevice({ cmd: 'pubcomp', messageId: packet.messageId });
          return;
        }
        return this.toUpstream(packet);
      default:
        return this.toUpstream(packet);
    }
  }

  private onConnect(packet: mqtt.IConnectPacket): void {
    clearTimeout(this.connectTimer);
    this.version = (packet.protocolVersion ?? 4) as Version;
    this.clientId = packet.clientId;
    this.state = 'authenticating';
    // An empty client id with a persistent session: MQTT 3.1.1 says refuse ([MQTT-3.1.3-8],
    // code 2). MQTT 5 would let the server assign one, but a session nobody can name again is
    // left behind on the broker by every such connect: refused too (0x85).
    if (!packet.clientId && !packet.clean) return this.refuse('identifier_rejected');
    if (this.version === 5 && packet.properties?.authenticationMethod !== undefined) return this.refuse('bad_auth_method');
    const creds = { clientId: packet.clientId, username: packet.username, password: packet.password };
    // A directory that never answers (a custom one calling a backend that hangs) must not hold
    // the connection, and its socket, for ever: the device is closed without a CONNACK and
    // retries (a CONNACK "server unavailable" would stop mqtt.js: see link()).
    this.connectTimer = setTimeout(() => {
      if (this.state !== 'authenticating') return;
      this.ctx.emit('error', new Error(`gateway: authenticating ${JSON.stringify(printable(packet.clientId))} took over ${this.ctx.authTimeoutMs} ms`));
      this.refuse('unavailable');
    }, this.ctx.authTimeoutMs);
    this.connectTimer.unref();
    Promise.resolve()
      .then(() => this.ctx.directory.authenticate(creds))
      .then(
        (result) => {
          if (this.state !== 'authenticating') return;
          clearTimeout(this.connectTimer);
          if (!result.ok) return this.refuse(result.reason);
          this.open(packet, result.device);
        },
        (err: Error) => {
          this.ctx.emit('error', err);
          if (this.state !== 'authenticating') return;
          clearTimeout(this.connectTimer);
          this.refuse('unavailable');
        },
      );
  }

  /**
   * Refused with the CONNACK code MQTT defines; "unavailable" with none at all (see link()). The
   * event never carries the username or password: a ThingsBoard username is its token.
   */
  private refuse(reason: keyof typeof CONNACK_CODES | 'unavailable', detail?: { deviceId: string; message: string }): void {
    this.ctx.counters.refused++;
    this.ctx.emit('refused', { clientId: this.clientId, reason, remote: this.remote, ...detail });
    if (reason !== 'unavailable') {
      const code = CONNACK_CODES[reason];
      this.toDevice(
        this.version === 5
          ? { cmd: 'connack', sessionPresent: false, reasonCode: code.v5 }
          : { cmd: 'connack', sessionPresent: false, returnCode: code.v4 },
      );
    }
    this.close(`refused: ${reason}`);
  }

  private open(connect: mqtt.IConnectPacket, device: DeviceIdentity): void {
    try {
      this.policy = this.ctx.policyFor(device);
    } catch (err) {
      // An ACL rule would need a value the device lacks: never widen it, refuse the device.
      if (!(err instanceof IncompleteIdentityError)) throw err;
      return this.refuse('not_authorized', { deviceId: device.deviceId, message: err.message });
    }
    this.device = device;
    this.reader.setLimit(this.ctx.limits.maxPacketBytes);
    const widen = this.ctx.widenThingsboard && device.dialect === 'thingsboard' && this.policy instanceof NamespacePolicy;
    const failure = this.version === 5 ? NOT_AUTHORIZED_V5 : 0x80;
    this.subscriptions = new SubscriptionBook(this.policy, widen, failure, (filter) => this.deny('subscribe', filter), (sub, packet, held) => {
      const code = this.bridged ? bridge.refuseSubscription(sub, packet, held) : null;
      if (code !== null) this.ctx.protocol.counters.refused++;
      return code;
    });
    this.upVersion = this.ctx.protocol.upstreamVersion(this.version);
    this.probing = this.version === 5 && this.upVersion === 5 && this.ctx.protocol.probing;
    this.deviceMaxPacket = this.version === 5 ? connect.properties?.maximumPacketSize : undefined;
    this.connect = connect;
    this.state = 'linking';
    this.linkDeadline = Date.now() + this.ctx.limits.upstreamRetryMs;
    this.link();
  }

  private get bridged(): boolean {
    return this.version === 5 && this.upVersion !== 5;
  }

  /**
   * Opens the broker connection and sends the device's CONNECT; while the broker cannot be
   * reached (refused, reset, or CONNACK "server unavailable"/"busy") it tries again until
   * upstreamRetryMs, then closes the device without a CONNACK. Why not CONNACK 3: mqtt.js 5.16
   * stops reconnecting on any refusing CONNACK unless the client opted into
   * `reconnectOnConnackError` (src/lib/handlers/connack.ts, `handleConnack`: `reconnectSuppressed
   * = true`, then `_setupReconnect()` only under that option), and our simulator (ota-sim) uses
   * mqtt.js's default. A connection closed before any CONNACK is, to every client, a network
   * failure: mqtt.js reconnects after reconnectPeriod ('close' -> `_setupReconnect`), paho's
   * loop_forever reconnects on a lost connection, and the embedded C clients (Paho
   * MQTTClient-C, esp-mqtt) see MQTTConnect fail or the transport drop and run their retry loop.
   * The device's packets wait in the queue meanwhile: while probing, the same CONNECT may have to
   * go up again as 3.1.1 (protocol-bridge.ts), which the device never notices.
   */
  private link(): void {
    const connect = this.connect as mqtt.IConnectPacket;
    const up = this.ctx.connectUpstream();
    this.upstream = up;
    let connected = false;
    up.once('connect', () => (connected = true));
    up.once('secureConnect', () => (connected = true));
    const parser = mqtt.parser({ protocolVersion: this.upVersion });
    parser.on('packet', (packet) => {
      if (up === this.upstream) this.fromUpstream(packet);
    });
    parser.on('error', (err: Error) => this.close(`broker sent a malformed packet: ${err.message}`));
    up.on('data', (data) => {
      this.socket.cork();
      try {
        parser.parse(data);
      } catch (err) {
        this.close(`broker sent a malformed packet: ${(err as Error).message}`);
      }
      this.socket.uncork();
      if (this.socket.writableNeedDrain) {
        up.pause();
        this.socket.once('drain', () => up.resume());
      }
    });
    up.on('error', (err) => {
      if (up !== this.upstream) return;
      if (this.state === 'linking') this.relink(err.message);
      else this.close(`broker connection: ${err.message}`);
    });
    up.on('close', () => {
      if (up !== this.upstream) return;
      // Closed without CONNACK while probing MQTT 5 (a broker that does not parse 5 at all): once more as 3.1.1.
      if (this.state === 'linking' && connected && this.probing && this.upVersion === 5) {
        this.retriedAfterClose = true;
        return this.relinkAs(4);
      }
      if (this.state === 'linking') this.relink('closed');
      else this.close('broker closed the connection');
    });
    // A broker that takes the connection and never answers it is as good as down.
    this.linkTimer = setTimeout(() => {
      if (up === this.upstream && this.state === 'linking') this.relink('no CONNACK');
    }, Math.max(1000, this.linkDeadline - Date.now()));
    let out = this.upstreamConnect(connect, this.device as DeviceIdentity);
    if (this.bridged) {
      const up4 = bridge.connectUp(out);
      this.ctx.protocol.dropped(up4.dropped);
      this.sessionExpiry = up4.sessionExpiry;
      out = up4.packet;
      this.ctx.protocol.counters.bridged++;
    }
    this.write(up, out, 'broker');
  }

  /** The same CONNECT at once in another version (the broker just showed it lacks MQTT 5). */
  private relinkAs(version: Version): void {
    clearTimeout(this.linkTimer);
    const up = this.upstream;
    this.upstream = undefined;
    up?.destroy();
    this.upVersion = version;
    this.link();
  }

  private relink(why: string): void {
    clearTimeout(this.linkTimer);
    const up = this.upstream;
    this.upstream = undefined;
    up?.destroy();
    if (this.state !== 'linking') return;
    const wait = Math.min(1000, 100 * 2 ** this.linkAttempts++);
    if (Date.now() + wait > this.linkDeadline) {
      this.ctx.brokerUnavailable(this, why);
      this.close(`broker unavailable (${why}) for ${this.ctx.limits.upstreamRetryMs} ms: closed without CONNACK so that the device reconnects`);
      return;
    }
    this.linkTimer = setTimeout(() => this.link(), wait);
  }

  private upstreamConnect(connect: mqtt.IConnectPacket, device: DeviceIdentity): mqtt.IConnectPacket {
    const policy = this.policy as TopicPolicy;
    // Prefixed per device so that no device can take over another device's session.
    const clientId = upstreamClientId(device.deviceId, connect.clientId || generatedClientId());
    const out: mqtt.IConnectPacket = { ...connect, clientId };
    delete out.username;
    delete out.password;
    if (this.ctx.upstream.username) {
      out.username = this.ctx.upstream.username;
      if (this.ctx.upstream.password !== undefined) out.password = Buffer.from(this.ctx.upstream.password);
    }
    if (connect.properties) {
      const props = { ...connect.properties };
      // No topic aliases from the broker: the device's topics are rewritten per message.
      delete props.topicAliasMaximum;
      // The broker sends prefixed topics, which the device never sees: leave room for them.
      if (props.maximumPacketSize) props.maximumPacketSize += policy.overhead;
      out.properties = props;
    }
    if (connect.will) {
      const topic = policy.publish(connect.will.topic);
      if (topic === null) {
        this.deny('publish', connect.will.topic);
        delete out.will;
      } else {
        out.will = { ...connect.will, topic };
        if (connect.will.properties?.responseTopic) {
          out.will.properties = { ...connect.will.properties, responseTopic: policy.publish(connect.will.properties.responseTopic) ?? undefined };
        }
      }
    }
    return out;
  }

  private devicePublish(packet: mqtt.IPublishPacket): void {
    const policy = this.policy as TopicPolicy;
    let topic = packet.topic;
    const alias = packet.properties?.topicAlias;
    // Aliases are resolved before rewriting (an alias-only PUBLISH rewritten blindly would land
    // on `{ns}/{id}/`), only up to the maximum told in CONNACK, and kept only for publishes the
    // ACL lets through: at most topicAliasMaximum topics of at most maxPacketBytes each.
    if (alias !== undefined) {
      if (alias < 1 || alias > this.ctx.limits.topicAliasMaximum) {
        return this.disconnect(TOPIC_ALIAS_INVALID_V5, `topic alias ${alias} above the maximum of ${this.ctx.limits.topicAliasMaximum}`);
      }
      if (!topic) {
        const known = this.aliasesUp.get(alias);
        if (known === undefined) return this.disconnect(PROTOCOL_ERROR_V5, `topic alias ${alias} was never set`);
        topic = known;
      }
    }
    const upTopic = policy.publish(topic);
    if (upTopic === null) {
      this.deny('publish', topic);
      this.ackRefusedPublish(packet);
      return;
    }
    if (alias !== undefined && packet.topic) this.aliasesUp.set(alias, topic);
    const out: mqtt.IPublishPacket = { ...packet, topic: upTopic };
    if (packet.properties) {
      const props = { ...packet.properties };
      delete props.topicAlias;
      if (props.responseTopic) props.responseTopic = policy.publish(props.responseTopic) ?? undefined;
      out.properties = props;
    }
    this.ctx.counters.published++;
    this.toUpstream(out);
  }

  private ackRefusedPublish(packet: mqtt.IPublishPacket, reasonCode: number = NOT_AUTHORIZED_V5): void {
    const messageId = packet.messageId;
    if (packet.qos === 0 || messageId === undefined) return;
    const v5 = this.version === 5;
    if (packet.qos === 1) {
      // MQTT 3.1.1 has no way to say no: acknowledge, or the device would resend forever.
      this.toDevice(v5 ? { cmd: 'puback', messageId, reasonCode } : { cmd: 'puback', messageId });
    } else if (v5) {
      this.toDevice({ cmd: 'pubrec', messageId, reasonCode });
    } else {
      this.refusedQos2.add(messageId);
      this.toDevice({ cmd: 'pubrec', messageId });
    }
  }

  private deviceSubscribe(packet: mqtt.ISubscribePacket): void {
    const outcome = (this.subscriptions as SubscriptionBook).subscribe(packet);
    if (outcome.upstream) this.toUpstream(outcome.upstream);
    else this.toDevice(outcome.suback);
  }

  private deviceUnsubscribe(packet: mqtt.IUnsubscribePacket): void {
    this.toUpstream((this.subscriptions as SubscriptionBook).unsubscribe(packet));
  }

  private deny(kind: 'publish' | 'subscribe', topic: string): void {
    if (kind === 'publish') this.ctx.counters.deniedPublish++;
    else this.ctx.counters.deniedSubscribe++;
    this.ctx.emit('denied', { deviceId: this.device?.deviceId, kind, topic: printable(topic) });
    // Refusals are answered here, not by the broker: without a bound they cost the gateway
    // without ever meeting the broker's flow control.
    if (this.state === 'open' && this.refusals.hit()) {
      const { maxRefused, refusedWindowMs } = this.ctx.limits;
      this.disconnect(NOT_AUTHORIZED_V5, `over ${maxRefused} refused publishes or subscriptions in ${refusedWindowMs} ms`);
    }
  }

  // ---- broker to device -------------------------------------------------------------------

  private fromUpstream(packet: mqtt.Packet): void {
    if (this.state === 'closed') return;
    switch (packet.cmd) {
      case 'connack':
        return this.upstreamConnack(packet);
      case 'publish':
        return this.upstreamPublish(packet);
      case 'suback': {
        const { packet: out, granted } = (this.subscriptions as SubscriptionBook).suback(packet);
        this.toDevice(out);
        // After the SUBACK: the broker has taken the subscription (and queued its retained messages).
        if (granted.length) this.ctx.sessionSubscribed(this, granted);
        return;
      }
      case 'unsuback': {
        const count = this.bridged ? (this.subscriptions as SubscriptionBook).unsubscribeCount(packet) : undefined;
        const out = (this.subscriptions as SubscriptionBook).unsuback(packet);
        return this.toDevice(count !== undefined ? bridge.unsubackDown(out, count) : out);
      }
      case 'pubrel':
        if (packet.messageId !== undefined && this.droppedQos2.delete(packet.messageId)) {
          this.toUpstream({ cmd: 'pubcomp', messageId: packet.messageId });
          return;
        }
        return this.toDevice(packet);
      default:
        return this.toDevice(packet);
    }
  }

  private upstreamConnack(packet: mqtt.IConnackPacket): void {
    if (this.state !== 'linking') return this.close('broker sent a second CONNACK');
    clearTimeout(this.linkTimer);
    const code = (this.upVersion === 5 ? packet.reasonCode : packet.returnCode) ?? 0;
    if (this.version === 5 && this.upVersion === 5) {
      this.ctx.protocol.answeredV5(code);
      // A 3.1.1 broker's "unacceptable protocol version" read as MQTT 5: 1 is no MQTT 5 code.
      if (code === bridge.UNACCEPTABLE_PROTOCOL_VERSION) {
        // auto just learned the broker lacks 5: the same CONNECT again, as 3.1.1.
        if (this.probing && this.ctx.protocol.upstreamVersion(5) === 4) return this.relinkAs(4);
        return this.finishConnack({ cmd: 'connack', sessionPresent: false, reasonCode: bridge.connackCodeV4toV5(code) }, code);
      }
    } else if (code === bridge.UNACCEPTABLE_PROTOCOL_VERSION) {
      this.ctx.protocol.refusedV4();
    } else if (this.retriedAfterClose) {
      this.ctx.protocol.closedV5ThenAnswered();
    }
    if ((this.upVersion === 5 ? BROKER_UNAVAILABLE.v5 : BROKER_UNAVAILABLE.v4).includes(code)) return this.relink(`CONNACK ${code}`);
    const out: mqtt.IConnackPacket = this.bridged ? bridge.connackDown(packet, this.sessionExpiry) : { ...packet };
    if (this.version === 5) {
      const props = { ...out.properties };
      // Our own topic alias maximum (the broker's is for our upstream leg, which uses none);
      // receiveMaximum passes through as is.
      delete props.topicAliasMaximum;
      if (this.ctx.limits.topicAliasMaximum > 0) props.topicAliasMaximum = this.ctx.limits.topicAliasMaximum;
      // Ours, or the broker's less our prefix (it lengthens every topic on the way up).
      const overhead = (this.policy as TopicPolicy).overhead;
      const broker = props.maximumPacketSize ? Math.max(1, props.maximumPacketSize - overhead) : Infinity;
      props.maximumPacketSize = Math.min(this.ctx.limits.maxPacketBytes, broker);
      out.properties = props;
    }
    this.finishConnack(out, code);
  }

  /** Passes the CONNACK (in the device's version) down; opens the session or ends it. */
  private finishConnack(out: mqtt.IConnackPacket, code: number): void {
    this.connackSent = true;
    this.toDevice(out);
    if (code) {
      this.close(`broker refused the connection (${code})`);
      return;
    }
    this.state = 'open';
    this.ctx.counters.accepted++;
    this.announced = true;
    this.ctx.sessionOpened(this);
    const queued = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const packet of queued) this.fromDevice(packet);
  }

  private upstreamPublish(packet: mqtt.IPublishPacket): void {
    const policy = this.policy as TopicPolicy;
    let topic = packet.topic;
    const alias = packet.properties?.topicAlias;
    if (alias !== undefined) {
      if (topic) this.aliasesDown.set(alias, topic);
      else topic = this.aliasesDown.get(alias) ?? '';
    }
    const deviceTopic = policy.down(topic);
    // Not the device's (cannot happen with our own filters): acknowledge and drop.
    if (deviceTopic === null) return this.dropDown(packet);
    const out: mqtt.IPublishPacket = { ...packet, topic: deviceTopic };
    if (packet.properties) {
      const props = { ...packet.properties };
      delete props.topicAlias;
      if (props.responseTopic) props.responseTopic = policy.down(props.responseTopic) ?? props.responseTopic;
      out.properties = props;
    }
    // Over the device's Maximum Packet Size: a 3.1.1 broker never heard of it (protocol-bridge.ts).
    if (this.bridged && bridge.exceedsPacketSize(out, this.deviceMaxPacket)) return this.dropDown(packet);
    this.ctx.counters.delivered++;
    this.toDevice(out);
  }

  /** Acknowledges a broker's message upstream without delivering it. */
  private dropDown(packet: mqtt.IPublishPacket): void {
    const messageId = packet.messageId;
    if (messageId !== undefined && packet.qos === 1) this.toUpstream({ cmd: 'puback', messageId });
    if (messageId !== undefined && packet.qos === 2) {
      this.droppedQos2.add(messageId);
      this.toUpstream({ cmd: 'pubrec', messageId });
    }
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private toDevice(packet: mqtt.Packet): void {
    // One gate for every code a device hears, whoever made it (broker, bridge, our refusals).
    const { packet: valid, invalid } = withValidReasonCodes(packet, this.version);
    if (invalid.length) {
      this.ctx.counters.errors++;
      if (!this.reportedBadCode) this.ctx.emit('error', new Error(`gateway: ${packet.cmd.toUpperCase()} for ${this.device?.deviceId ?? this.remote} carried reason code(s) ${invalid.map((c) => '0x' + c.toString(16)).join(', ')}, not valid in MQTT ${this.version === 5 ? '5' : '3.1.1'}: sent the generic failure instead`));
      this.reportedBadCode = true;
    }
    this.write(this.socket, valid, 'device');
  }

  private toUpstream(packet: mqtt.Packet): void {
    if (!this.upstream) return;
    if (this.bridged) {
      const up = this.bridgeUp(packet);
      if (!up) return;
      packet = up;
    }
    this.write(this.upstream, packet, 'broker');
  }

  /** An MQTT 5 device's packet for a 3.1.1 broker (protocol-bridge.ts), or null when answered here. */
  private bridgeUp(packet: mqtt.Packet): mqtt.Packet | null {
    if (packet.cmd === 'publish') {
      const up = bridge.publishUp(packet);
      if (up.refuse !== undefined) {
        this.ctx.protocol.counters.refused++;
        this.ackRefusedPublish(packet, up.refuse);
        return null;
      }
      this.ctx.protocol.dropped(up.dropped);
      return up.packet;
    }
    if (packet.cmd === 'subscribe') return bridge.subscribeUp(packet);
    const up = bridge.otherUp(packet);
    if ('packet' in up) return up.packet;
    if ('abort' in up) {
      // No DISCONNECT upstream: the broker sees the connection drop and publishes the will.
      this.upstream?.destroy();
      this.close(up.abort);
      return null;
    }
    this.disconnect(up.disconnect, up.why);
    return null;
  }

  private write(socket: net.Socket, packet: mqtt.Packet, side: string): void {
    if (socket.destroyed || socket.writableEnded) return;
    let bytes: Buffer;
    try {
      // Without protocolVersion, generate() silently drops MQTT 5 properties and reason codes.
      bytes = mqtt.generate(packet, { protocolVersion: socket === this.socket ? this.version : this.upVersion });
    } catch (err) {
      this.ctx.counters.errors++;
      this.ctx.emit('error', new Error(`cannot encode ${packet.cmd} for the ${side} of ${this.device?.deviceId ?? this.remote}: ${(err as Error).message}`));
      this.close('encoding error');
      return;
    }
    socket.write(bytes);
  }

  private malformed(message: string): void {
    if (this.state === 'closed') return;
    this.ctx.counters.malformed++;
    this.ctx.emit('malformed', { deviceId: this.device?.deviceId, remote: this.remote, message: printable(message) });
    this.close(`malformed packet: ${printable(message)}`);
  }

  /** A packet over the limit (or a header that cannot be one): closed before it is buffered. */
  private tooLarge(err: Error): void {
    if (this.state === 'closed') return;
    if (!(err instanceof PacketTooLarge)) return this.malformed(err.message);
    this.ctx.counters.tooLarge++;
    this.ctx.emit('malformed', { deviceId: this.device?.deviceId, remote: this.remote, message: err.message });
    // Before authentication the device has been told nothing: it is simply closed.
    if (this.connackSent) this.disconnect(PACKET_TOO_LARGE_V5, err.message);
    else this.close(err.message);
  }

  /** MQTT 5 devices hear why (DISCONNECT with a reason code); 3.1.1 has no way to say it. */
  private disconnect(reasonCode: number, reason: string): void {
    if (this.state === 'closed') return;
    if (this.version === 5 && this.connackSent) this.toDevice({ cmd: 'disconnect', reasonCode });
    this.close(reason);
  }

  /** Ends both legs with end(), so a final CONNACK or DISCONNECT still goes out. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    const wasOpen = this.announced;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    clearTimeout(this.linkTimer);
    this.reader.stop();
    this.queue = [];
    this.parser.removeAllListeners('packet');
    for (const socket of [this.socket, this.upstream]) {
      if (!socket || socket.destroyed) continue;
      socket.end();
      // A peer that never closes its side must not keep the socket (or a redeploy) alive.
      setTimeout(() => socket.destroy(), this.ctx.closeGraceMs).unref();
    }
    this.ctx.sessionClosed(this, wasOpen, reason);
  }
}
