import type * as net from 'net';
import type * as mqtt from 'mqtt-packet';
import type { DeviceIdentity } from './directory';
import { WindowCounter } from './limits';
import { printable } from './log-limit';
import type { TopicPolicy } from './policy';
import * as bridge from './protocol-bridge';
import { PublishTopics } from './publish-topics';
import { SubscriptionBook } from './subscriptions';
import type { UpstreamLink } from './upstream-link';
import type { GatewayContext } from './gateway';
import { withheld } from './notice-gate';

// What a device's session does with each packet once linked, both ways: the device's go up
// rewritten by its TopicPolicy (and bridged to 3.1.1 where the broker lacks MQTT 5), the broker's
// come down with the device's topics restored. Refusals are answered to the device here.

type Version = bridge.Version;

export const NOT_AUTHORIZED_V5 = 0x87;

/** What the relay needs from its device session (session.ts). */
export interface RelaySession {
  /** True once the broker's CONNACK opened the session. */
  isOpen(): boolean;
  /** Every packet the device hears, through the session's reason-code gate. */
  toDevice(packet: mqtt.Packet): void;
  /** Encodes `packet` in `version` and writes it to the broker connection. */
  write(socket: net.Socket, packet: mqtt.Packet, version: Version): void;
  /** Ends the session, telling an MQTT 5 device why. */
  disconnect(reasonCode: number, reason: string): void;
  close(reason: string): void;
  /** The broker granted these subscriptions (the gateway may now send retained firmware notices). */
  subscribed(filters: string[]): void;
}

export interface RelayOptions {
  device: DeviceIdentity;
  version: Version;
  policy: TopicPolicy;
  /** Subscriptions may widen to ThingsBoard's own topics (subscriptions.ts). */
  widen: boolean;
  /** The device's MQTT 5 Maximum Packet Size, which a 3.1.1 broker never hears of. */
  deviceMaxPacket?: number;
}

export class PacketRelay {
  private readonly topics: PublishTopics;
  private readonly subscriptions: SubscriptionBook;
  private readonly refusals: WindowCounter;
  /** QoS 2 publishes refused in MQTT 3.1.1: their PUBREL is answered here, not upstream. */
  private readonly refusedQos2 = new Set<number>();
  /** QoS 2 messages dropped on the way down: their PUBREL is answered here. */
  private readonly droppedQos2 = new Set<number>();

  constructor(
    private readonly ctx: GatewayContext,
    private readonly session: RelaySession,
    private readonly link: UpstreamLink,
    private readonly options: RelayOptions,
  ) {
    const { policy, version } = options;
    this.refusals = new WindowCounter(ctx.limits.maxRefused, ctx.limits.refusedWindowMs);
    this.topics = new PublishTopics(policy, ctx.limits.topicAliasMaximum);
    const failure = version === 5 ? NOT_AUTHORIZED_V5 : 0x80;
    this.subscriptions = new SubscriptionBook(policy, options.widen, failure, (filter) => this.deny('subscribe', filter), (sub, packet, held) => {
      const code = this.link.bridged ? bridge.refuseSubscription(sub, packet, held) : null;
      if (code !== null) this.ctx.protocol.counters.refused++;
      return code;
    });
  }

  // ---- device to broker -------------------------------------------------------------------

  /** A packet from the device of an open session (a second CONNECT never comes here). */
  fromDevice(packet: mqtt.Packet): void {
    switch (packet.cmd) {
      case 'publish':
        return this.devicePublish(packet);
      case 'subscribe':
        return this.deviceSubscribe(packet);
      case 'unsubscribe':
        return this.toUpstream(this.subscriptions.unsubscribe(packet));
      case 'auth':
        // No authentication method was accepted at CONNECT, so an AUTH is a protocol error (5.0 4.12).
        return this.session.disconnect(bridge.RC.protocolError, 'AUTH without an authentication method');
      case 'pubrel':
        if (packet.messageId !== undefined && this.refusedQos2.delete(packet.messageId)) {
          this.session.toDevice({ cmd: 'pubcomp', messageId: packet.messageId });
          return;
        }
        return this.toUpstream(packet);
      default:
        return this.toUpstream(packet);
    }
  }

  /** Counts a refused publish or subscription; too many in the window end the session. */
  deny(kind: 'publish' | 'subscribe', topic: string): void {
    if (kind === 'publish') this.ctx.counters.deniedPublish++;
    else this.ctx.counters.deniedSubscribe++;
    this.ctx.emit('denied', { deviceId: this.options.device.deviceId, kind, topic: printable(topic) });
    // Refusals are answered here, not by the broker: without a bound they cost the gateway
    // without ever meeting the broker's flow control.
    if (this.session.isOpen() && this.refusals.hit()) {
      const { maxRefused, refusedWindowMs } = this.ctx.limits;
      this.session.disconnect(NOT_AUTHORIZED_V5, `over ${maxRefused} refused publishes or subscriptions in ${refusedWindowMs} ms`);
    }
  }

  private devicePublish(packet: mqtt.IPublishPacket): void {
    const up = this.topics.up(packet);
    if ('disconnect' in up) return this.session.disconnect(up.disconnect, up.why);
    if ('denied' in up) {
      this.deny('publish', up.denied);
      this.ackRefusedPublish(packet);
      return;
    }
    this.ctx.counters.published++;
    this.toUpstream(up.packet);
  }

  private deviceSubscribe(packet: mqtt.ISubscribePacket): void {
    const outcome = this.subscriptions.subscribe(packet);
    if (outcome.upstream) this.toUpstream(outcome.upstream);
    else this.session.toDevice(outcome.suback);
  }

  private ackRefusedPublish(packet: mqtt.IPublishPacket, reasonCode: number = NOT_AUTHORIZED_V5): void {
    const messageId = packet.messageId;
    if (packet.qos === 0 || messageId === undefined) return;
    const v5 = this.options.version === 5;
    if (packet.qos === 1) {
      // MQTT 3.1.1 has no way to say no: acknowledge, or the device would resend forever.
      this.session.toDevice(v5 ? { cmd: 'puback', messageId, reasonCode } : { cmd: 'puback', messageId });
    } else if (v5) {
      this.session.toDevice({ cmd: 'pubrec', messageId, reasonCode });
    } else {
      this.refusedQos2.add(messageId);
      this.session.toDevice({ cmd: 'pubrec', messageId });
    }
  }

  private toUpstream(packet: mqtt.Packet): void {
    const link = this.link;
    if (!link.socket) return;
    if (link.bridged) {
      const up = this.bridgeUp(packet);
      if (!up) return;
      packet = up;
    }
    this.session.write(link.socket, packet, link.version);
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
      this.link.socket?.destroy();
      this.session.close(up.abort);
      return null;
    }
    this.session.disconnect(up.disconnect, up.why);
    return null;
  }

  // ---- broker to device -------------------------------------------------------------------

  /** A packet from the broker after its CONNACK. */
  fromBroker(packet: mqtt.Packet): void {
    switch (packet.cmd) {
      case 'publish':
        return this.brokerPublish(packet);
      case 'suback': {
        const { packet: out, granted } = this.subscriptions.suback(packet);
        this.session.toDevice(out);
        // After the SUBACK: the broker has taken the subscription (and queued its retained messages).
        if (granted.length) this.session.subscribed(granted);
        return;
      }
      case 'unsuback': {
        const count = this.link.bridged ? this.subscriptions.unsubscribeCount(packet) : undefined;
        const out = this.subscriptions.unsuback(packet);
        return this.session.toDevice(count !== undefined ? bridge.unsubackDown(out, count) : out);
      }
      case 'pubrel':
        if (packet.messageId !== undefined && this.droppedQos2.delete(packet.messageId)) {
          this.toUpstream({ cmd: 'pubcomp', messageId: packet.messageId });
          return;
        }
        return this.session.toDevice(packet);
      default:
        return this.session.toDevice(packet);
    }
  }

  private brokerPublish(packet: mqtt.IPublishPacket): void {
    const out = this.topics.down(packet);
    // Not the device's (cannot happen with our own filters): acknowledge and drop.
    if (out === null) return this.dropDown(packet);
    // A Sming notice for a device its rollout has not released yet (notice-gate.ts).
    if (withheld(this.ctx.noticeGate, this.options.device, out)) return this.dropDown(packet);
    // Over the device's Maximum Packet Size: a 3.1.1 broker never heard of it (protocol-bridge.ts).
    if (this.link.bridged && bridge.exceedsPacketSize(out, this.options.deviceMaxPacket)) return this.dropDown(packet);
    this.ctx.counters.delivered++;
    this.session.toDevice(out);
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
}
