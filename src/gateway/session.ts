import * as net from 'net';
import { randomBytes } from 'crypto';
import * as mqtt from 'mqtt-packet';
import { AuthFailure, DeviceIdentity } from './directory';
import { IncompleteIdentityError, NamespacePolicy, TopicPolicy } from './policy';
import { SubscriptionBook } from './subscriptions';
import type { GatewayContext } from './gateway';

// One device connection and its own upstream connection. The device's packets go up rewritten
// by its TopicPolicy; the broker's come down with the device's topics restored. The gateway never
// originates packets on the upstream leg (its packet ids belong to the device); it only answers
// the device itself where it refuses something.

type Version = 3 | 4 | 5;

const NOT_AUTHORIZED_V5 = 0x87;
const MAX_QUEUED = 1000;

const CONNACK_CODES: Record<AuthFailure | 'unavailable', { v4: number; v5: number }> = {
  bad_credentials: { v4: 4, v5: 0x86 },
  not_authorized: { v4: 5, v5: 0x87 },
  unavailable: { v4: 3, v5: 0x88 },
};

export class DeviceSession {
  readonly remote: string;
  device?: DeviceIdentity;
  clientId = '';
  private state: 'connecting' | 'authenticating' | 'open' | 'closed' = 'connecting';
  private version: Version = 4;
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
    if (this.state === 'authenticating') {
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
  private refuse(reason: AuthFailure | 'unavailable', detail?: { deviceId: string; message: string }): void {
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
    this.subscriptions = new SubscriptionBook(this.policy, widen, failure, (filter) => this.deny('subscribe', filter));
    const up = this.ctx.connectUpstream();
    this.upstream = up;
    const parser = mqtt.parser({ protocolVersion: this.version });
    parser.on('packet', (packet) => this.fromUpstream(packet));
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
      if (this.state === 'open' && !this.connackSent) this.refuse('unavailable');
      else this.close(`broker connection: ${err.message}`);
    });
    up.on('close', () => this.close('broker closed the connection'));

    this.state = 'open';
    this.toUpstream(this.upstreamConnect(connect, device));
    const queued = this.queue;
    this.queue = [];
    for (const packet of queued) this.fromDevice(packet);
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

  private ackRefusedPublish(packet: mqtt.IPublishPacket): void {
    const messageId = packet.messageId;
    if (packet.qos === 0 || messageId === undefined) return;
    const v5 = this.version === 5;
    if (packet.qos === 1) {
      // MQTT 3.1.1 has no way to say no: acknowledge, or the device would resend forever.
      this.toDevice(v5 ? { cmd: 'puback', messageId, reasonCode: NOT_AUTHORIZED_V5 } : { cmd: 'puback', messageId });
    } else if (v5) {
      this.toDevice({ cmd: 'pubrec', messageId, reasonCode: NOT_AUTHORIZED_V5 });
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
      case 'unsuback':
        return this.toDevice((this.subscriptions as SubscriptionBook).unsuback(packet));
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
    this.connackSent = true;
    const code = this.version === 5 ? packet.reasonCode : packet.returnCode;
    this.toDevice(out);
    if (code) {
      this.close(`broker refused the connection (${code})`);
      return;
    }
    this.ctx.counters.accepted++;
    this.announced = true;
    this.ctx.sessionOpened(this);
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
    if (deviceTopic === null) {
      // Not the device's (cannot happen with our own filters): acknowledge and drop.
      const messageId = packet.messageId;
      if (messageId !== undefined && packet.qos === 1) this.toUpstream({ cmd: 'puback', messageId });
      if (messageId !== undefined && packet.qos === 2) {
        this.droppedQos2.add(messageId);
        this.toUpstream({ cmd: 'pubrec', messageId });
      }
      return;
    }
    const out: mqtt.IPublishPacket = { ...packet, topic: deviceTopic };
    if (packet.properties) {
      const props = { ...packet.properties };
      delete props.topicAlias;
      if (props.responseTopic) props.responseTopic = policy.down(props.responseTopic) ?? props.responseTopic;
      out.properties = props;
    }
    this.ctx.counters.delivered++;
    this.toDevice(out);
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private toDevice(packet: mqtt.Packet): void {
    this.write(this.socket, packet, 'device');
  }

  private toUpstream(packet: mqtt.Packet): void {
    if (this.upstream) this.write(this.upstream, packet, 'broker');
  }

  private write(socket: net.Socket, packet: mqtt.Packet, side: string): void {
    if (socket.destroyed || socket.writableEnded) return;
    let bytes: Buffer;
    try {
      // Without protocolVersion, generate() silently drops MQTT 5 properties and reason codes.
      bytes = mqtt.generate(packet, { protocolVersion: this.version });
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
