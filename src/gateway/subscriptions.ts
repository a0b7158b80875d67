import * as mqtt from 'mqtt-packet';
import { TopicPolicy } from './policy';
import { intersects } from './topics';

// A device's SUBSCRIBE/UNSUBSCRIBE as they go up, and their acknowledgements as they come back:
// refused filters leave the packet and get a failure code back in their slot; the ThingsBoard
// widening rides inside the device's own packet (same packet id) and its codes are trimmed off.

// ThingsBoard's transport delivers `v2/fw/response/{id}/chunk/{n}` to a device subscribed to
// `v2/fw/response/+`; a plain broker does not, so the gateway adds the wider filter itself.
export const TB_RESPONSE = 'v2/fw/response/+';
export const TB_CHUNKS = 'v2/fw/response/+/chunk/+';

export type SubscribeOutcome =
  | { upstream: mqtt.ISubscribePacket; suback?: undefined }
  /** Every filter refused: nothing to ask the broker, answer the device directly. */
  | { upstream?: undefined; suback: mqtt.ISubackPacket };

export class SubscriptionBook {
  /** For each pending SUBSCRIBE: per device filter, its index upstream, or -1 when refused. */
  private readonly pendingSubs = new Map<number, number[]>();
  /** For each pending UNSUBSCRIBE: how many filters the device named. */
  private readonly pendingUnsubs = new Map<number, number>();
  /** The device's own subscriptions, in its own topic names. */
  private readonly filters = new Set<string>();
  /** True while the gateway's own TB_CHUNKS filter is subscribed for this device. */
  private widened = false;

  constructor(
    private readonly policy: TopicPolicy,
    /** Widen `v2/fw/response/+` (ThingsBoard devices in a namespace). */
    private readonly widen: boolean,
    /** 0x80 (MQTT 3.1.1) or 0x87 not authorized (MQTT 5). */
    private readonly failureCode: number,
    private readonly onRefused: (filter: string) => void,
  ) {}

  subscribe(packet: mqtt.ISubscribePacket): SubscribeOutcome {
    const upstream: mqtt.ISubscription[] = [];
    const slots: number[] = [];
    for (const sub of packet.subscriptions) {
      const filter = this.policy.subscribe(sub.topic);
      if (filter === null) {
        this.onRefused(sub.topic);
        slots.push(-1);
        continue;
      }
      slots.push(upstream.length);
      upstream.push({ ...sub, topic: filter });
      this.filters.add(sub.topic);
    }
    // An explicit subscription to the chunk filter itself is the device's own from now on.
    if (this.filters.has(TB_CHUNKS)) this.widened = false;
    const base = packet.subscriptions.findIndex((s) => s.topic === TB_RESPONSE);
    if (base >= 0 && slots[base] >= 0 && this.mayWiden()) {
      // The device's own options (QoS, no-local, retain handling) for the filter it asked for.
      upstream.push({ ...packet.subscriptions[base], topic: this.policy.subscribe(TB_CHUNKS) as string });
      this.widened = true;
    }
    const messageId = packet.messageId ?? 0;
    if (upstream.length === 0) return { suback: { cmd: 'suback', messageId, granted: slots.map(() => this.failureCode) } };
    this.pendingSubs.set(messageId, slots);
    return { upstream: { ...packet, subscriptions: upstream } };
  }

  /**
   * Never widen when another filter of the device already reaches the chunk topics: the device
   * would get every chunk twice, and ThingsBoard clients append blindly.
   */
  private mayWiden(): boolean {
    if (!this.widen) return false;
    for (const filter of this.filters) {
      if (filter !== TB_RESPONSE && intersects(filter, TB_CHUNKS)) return false;
    }
    return true;
  }

  suback(packet: mqtt.ISubackPacket): mqtt.ISubackPacket {
    const id = packet.messageId ?? 0;
    const slots = this.pendingSubs.get(id);
    if (!slots) return packet;
    this.pendingSubs.delete(id);
    const granted = packet.granted as number[];
    return { ...packet, granted: slots.map((i) => (i < 0 ? this.failureCode : (granted[i] ?? this.failureCode))) };
  }

  unsubscribe(packet: mqtt.IUnsubscribePacket): mqtt.IUnsubscribePacket {
    const filters = packet.unsubscriptions.map((f) => this.policy.unsubscribe(f));
    for (const f of packet.unsubscriptions) this.filters.delete(f);
    if (this.widened && packet.unsubscriptions.includes(TB_RESPONSE)) {
      filters.push(this.policy.unsubscribe(TB_CHUNKS));
      this.widened = false;
    }
    this.pendingUnsubs.set(packet.messageId ?? 0, packet.unsubscriptions.length);
    return { ...packet, unsubscriptions: filters };
  }

  /** MQTT 5 UNSUBACKs carry one reason code per filter: trim the ones the gateway added. */
  unsuback(packet: mqtt.IUnsubackPacket): mqtt.IUnsubackPacket {
    const id = packet.messageId ?? 0;
    const count = this.pendingUnsubs.get(id);
    this.pendingUnsubs.delete(id);
    if (count === undefined || !Array.isArray(packet.granted) || packet.granted.length <= count) return packet;
    return { ...packet, granted: packet.granted.slice(0, count) };
  }
}
