import * as net from 'net';
import { randomBytes } from 'crypto';
import * as mqtt from 'mqtt-packet';
import { AuthFailure, DeviceIdentity } from './directory';
import { IncompleteIdentityError, NamespacePolicy, TopicPolicy } from './policy';
import { SubscriptionBook } from './subscriptions';
import * as bridge from './protocol-bridge';
import { withValidReasonCodes } from './reason-codes';
import type { GatewayContext } from './gateway';

// One device connection and its own upstream connection. The device's packets go up rewritten
// by its TopicPolicy; the broker's come down with the device's topics restored. The gateway never
// originates packets on the upstream leg (its packet ids belong to the device); it only answers
// the device itself where it refuses something.

type Version = 3 | 4 | 5;

export const NOT_AUTHORIZED_V5 = 0x87;
const MAX_QUEUED = 1000;

export const CONNACK_CODES: Record<AuthFailure | 'unavailable' | 'bad_auth_method', { v4: number; v5: number }> = {
  bad_credentials: { v4: 4, v5: 0x86 },
  not_authorized: { v4: 5, v5: 0x87 },
  unavailable: { v4: 3, v5: 0x88 },
  // MQTT 5 enhanced authentication: the gateway authenticates devices itself, with no AUTH exchange.
  bad_auth_method: { v4: 4, v5: bridge.RC.badAuthenticationMethod },
};

export class DeviceSession {
  readonly remote: string;
  device?: DeviceIdentity;
  clientId = '';
  private state: 'connecting' | 'authenticating' | 'open' | 'closed' = 'connecting';
  private version: Version = 4;
  /** The broker side's own version: 3.1.1 for an MQTT 5 device when the broker lacks 5 (protocol-bridge.ts). */
  private upVersion: Version = 4;
  /** While the broker has not yet answered a probing MQTT 5 CONNECT: device packets wait. */
  private holding = false;
  /** The MQTT 5 CONNECT went up and the broker closed without CONNACK: this is the 3.1.1 retry. */
  private retriedAfterClose = false;
  private sessionExpiry?: number;
  private deviceMaxPacket?: number;
  private reportedBadCode = false;
  private connectPacket?: mqtt.IConnectPacket;
  private policy?: TopicPolicy;
  private upstream?: net.Socket;
  private readonly parser = mqtt.parser();
  private queue: mqtt.Packet[] = [];
  private subscriptions?: SubscriptionBook;
  /** QoS 2 publishes refused in MQTT 3.1.1: their PUBREL is answered here, not upstream. */
  private readonly refusedQos2 = new Set<number>();
  /** QoS 2 messages dropped on the way down: their PUBREL is answered here. */
  private readonly droppedQos2 = new Set<number>();
  private readonly aliasesUp = new Map<number, string>();
  private readonly aliasesDown = new Map<number, string>();
  private connackSent = false;
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
    this.parser.on('packet', (packet) => this.fromDevice(packet));
    this.parser.on('error', (err: Error) => this.malformed(err.message));
    socket.on('data', (data) => {
      const up = this.upstream;
      up?.cork();
      try {
        this.parser.parse(data);
      } catch (err) {
        this.malformed((err as Error).message);
      }
      if (up) {
        up.uncork();
        if (up.writableNeedDrain) {
          socket.pause();
          up.once('drain', () => socket.resume());
        }
      }
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
    if (this.state === 'authenticating' || this.holding) {
      if (this.queue.length >= MAX_QUEUED) return this.close('too many packets before authentication');
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
        return this.disconnectDevice(bridge.RC.protocolError, 'AUTH without an authentication method');
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
    if (this.version === 5 && packet.properties?.authenticationMethod !== undefined) return this.refuse('bad_auth_method');
    const creds = { clientId: packet.clientId, username: packet.username, password: packet.password };
    // A directory that never answers (a custom one calling a backend that hangs) must not hold
    // the connection, and its socket, for ever: the device hears "server unavailable" and retries.
    this.connectTimer = setTimeout(() => {
      if (this.state !== 'authenticating') return;
      this.ctx.emit('error', new Error(`gateway: authenticating ${JSON.stringify(packet.clientId)} took over ${this.ctx.authTimeoutMs} ms`));
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

  /** The event never carries the username or password: a ThingsBoard username is its token. */
  private refuse(reason: AuthFailure | 'unavailable' | 'bad_auth_method', detail?: { deviceId: string; message: string }): void {
    const code = CONNACK_CODES[reason];
    this.ctx.counters.refused++;
    this.ctx.emit('refused', { clientId: this.clientId, reason, remote: this.remote, ...detail });
    this.toDevice(
      this.version === 5
        ? { cmd: 'connack', sessionPresent: false, reasonCode: code.v5 }
        : { cmd: 'connack', sessionPresent: false, returnCode: code.v4 },
    );
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
    const widen = this.ctx.widenThingsboard && device.dialect === 'thingsboard' && this.policy instanceof NamespacePolicy;
    const failure = this.version === 5 ? NOT_AUTHORIZED_V5 : 0x80;
    this.subscriptions = new SubscriptionBook(this.policy, widen, failure, (filter) => this.deny('subscribe', filter), (sub, packet, held) => {
      const code = this.bridged ? bridge.refuseSubscription(sub, packet, held) : null;
      if (code !== null) this.ctx.protocol.counters.refused++;
      return code;
    });
    this.state = 'open';
    this.upVersion = this.ctx.protocol.upstreamVersion(this.version);
    this.deviceMaxPacket = this.version === 5 ? connect.properties?.maximumPacketSize : undefined;
    // The first MQTT 5 device of a gateway in `auto` learns whether the broker speaks 5: its
    // packets wait for the broker's answer, so they can go up again as 3.1.1 if it does not.
    this.holding = this.version === 5 && this.upVersion === 5 && this.ctx.protocol.probing;
    this.connectPacket = connect;
    this.linkUpstream(connect, device);
    if (!this.holding) this.flushQueue();
  }

  private get bridged(): boolean {
    return this.version === 5 && this.upVersion !== 5;
  }

  private flushQueue(): void {
    const queued = this.queue;
    this.queue = [];
    for (const packet of queued) this.fromDevice(packet);
  }

  /** Opens the broker connection in `this.upVersion`, with its own parser, and sends the CONNECT. */
  private linkUpstream(connect: mqtt.IConnectPacket, device: DeviceIdentity): void {
    const up = this.ctx.connectUpstream();
    this.upstream = up;
    let connected = false;
    up.once('connect', () => (connected = true));
    up.once('secureConnect', () => (connected = true));
    const parser = mqtt.parser({ protocolVersion: this.upVersion });
    parser.on('packet', (packet) => {
      if (this.upstream === up) this.fromUpstream(packet);
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
      if (this.upstream !== up) return;
      if (this.state === 'open' && !this.connackSent) this.refuse('unavailable');
      else this.close(`broker connection: ${err.message}`);
    });
    up.on('close', () => {
      if (this.upstream !== up) return;
      // Closed without CONNACK while probing MQTT 5 (a broker that does not parse 5 at all): once more as 3.1.1.
      if (connected && this.holding && !this.connackSent && this.upVersion === 5 && this.state === 'open') {
        this.retriedAfterClose = true;
        this.upVersion = 4;
        this.linkUpstream(connect, device);
        return;
      }
      this.close('broker closed the connection');
    });
    let out = this.upstreamConnect(connect, device);
    if (this.bridged) {
      const up4 = bridge.connectUp(out);
      this.ctx.protocol.dropped(up4.dropped);
      this.sessionExpiry = up4.sessionExpiry;
      out = up4.packet;
      this.ctx.protocol.counters.bridged++;
    }
    this.write(up, out, 'broker');
  }

  private upstreamConnect(connect: mqtt.IConnectPacket, device: DeviceIdentity): mqtt.IConnectPacket {
    const policy = this.policy as TopicPolicy;
    // Prefixed per device so that no device can take over another device's session.
    const clientId = `${device.deviceId}:${connect.clientId || randomBytes(6).toString('hex')}`;
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
    // We advertise topicAliasMaximum 0, but resolve any alias a device sends anyway: an
    // alias-only PUBLISH rewritten blindly would land on `{ns}/{id}/`.
    if (alias !== undefined) {
      if (topic) this.aliasesUp.set(alias, topic);
      else topic = this.aliasesUp.get(alias) ?? '';
    }
    const upTopic = policy.publish(topic);
    if (upTopic === null) {
      this.deny('publish', topic);
      this.ackRefusedPublish(packet);
      return;
    }
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
    this.ctx.emit('denied', { deviceId: this.device?.deviceId, kind, topic });
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
    const code = (this.upVersion === 5 ? packet.reasonCode : packet.returnCode) ?? 0;
    if (this.version === 5 && this.upVersion === 5) {
      this.ctx.protocol.answeredV5(code);
      // A 3.1.1 broker's "unacceptable protocol version" read as MQTT 5: 1 is no MQTT 5 code.
      if (code === bridge.UNACCEPTABLE_PROTOCOL_VERSION) {
        if (this.ctx.protocol.upstreamVersion(5) === 4 && this.holding) {
          // auto just learned the broker lacks 5: the same CONNECT again, as 3.1.1.
          this.upVersion = 4;
          this.upstream?.destroy();
          this.linkUpstream(this.connectPacket as mqtt.IConnectPacket, this.device as DeviceIdentity);
          return;
        }
        return this.finishConnack({ cmd: 'connack', sessionPresent: false, reasonCode: bridge.connackCodeV4toV5(code) }, code);
      }
    } else if (code === bridge.UNACCEPTABLE_PROTOCOL_VERSION) {
      this.ctx.protocol.refusedV4();
    } else if (this.retriedAfterClose) {
      this.ctx.protocol.closedV5ThenAnswered();
    }
    if (this.bridged) return this.finishConnack(bridge.connackDown(packet, this.sessionExpiry), code);
    const out: mqtt.IConnackPacket = { ...packet };
    if (packet.properties) {
      const props = { ...packet.properties };
      // Topic aliases are disabled toward the device; receiveMaximum passes through as is.
      delete props.topicAliasMaximum;
      // Our prefix lengthens every topic on the way up: promise the device a little less.
      const overhead = (this.policy as TopicPolicy).overhead;
      if (props.maximumPacketSize) props.maximumPacketSize = Math.max(1, props.maximumPacketSize - overhead);
      out.properties = props;
    }
    this.finishConnack(out, code);
  }

  /** Passes the broker's CONNACK (as the device's version has it) down; opens or ends the session. */
  private finishConnack(out: mqtt.IConnackPacket, code: number): void {
    this.connackSent = true;
    this.toDevice(out);
    if (code) {
      this.close(`broker refused the connection (${code})`);
      return;
    }
    this.ctx.counters.accepted++;
    this.announced = true;
    this.ctx.sessionOpened(this);
    if (this.holding) {
      this.holding = false;
      this.flushQueue();
    }
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
    this.disconnectDevice(up.disconnect, up.why);
    return null;
  }

  /** Sends an MQTT 5 device a DISCONNECT with this reason and ends the session. */
  private disconnectDevice(reasonCode: number, why: string): void {
    this.toDevice({ cmd: 'disconnect', reasonCode });
    this.close(why);
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
    this.ctx.emit('malformed', { deviceId: this.device?.deviceId, remote: this.remote, message });
    this.close(`malformed packet: ${message}`);
  }

  /** Ends both legs with end(), so a final CONNACK or DISCONNECT still goes out. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    const wasOpen = this.announced;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
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
