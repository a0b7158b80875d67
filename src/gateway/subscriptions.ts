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

/** A reason code refusing one subscription for a reason of the broker's protocol, or null. */
export type SubscriptionVet = (sub: mqtt.ISubscription, packet: mqtt.ISubscribePacket, held: boolean) => number | null;

export class SubscriptionBook {
  /** For each pending SUBSCRIBE: per device filter, its index upstream (or the code refusing it), and the filters. */
  private readonly pendingSubs = new Map<number, { slots: Array<number | { code: number }>; filters: string[] }>();
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
    /** Refusals the broker's protocol calls for (an MQTT 5 device bridged to 3.1.1). */
    private readonly vet: SubscriptionVet = () => null,
  ) {}

  subscribe(packet: mqtt.ISubscribePacket): SubscribeOutcome {
    const upstream: mqtt.ISubscription[] = [];
    const slots: Array<number | { code: number }> = [];
    for (const sub of packet.subscriptions) {
      const filter = this.policy.subscribe(sub.topic);
      if (filter === null) {
        this.onRefused(sub.topic);
        slots.push({ code: this.failureCode });
        continue;
      }
      const code = this.vet(sub, packet, this.filters.has(sub.topic));
      if (code !== null) {
        slots.push({ code });
        continue;
      }
      slots.push(upstream.length);
      upstream.push({ ...sub, topic: filter });
      this.filters.add(sub.topic);
    }
    // An explicit subscription to the chunk filter itself is the device's own from now on.
    if (this.filters.has(TB_CHUNKS)) this.widened = false;
    const base = packet.subscriptions.findIndex((s) => s.topic === TB_RESPONSE);
    if (base >= 0 && typeof slots[base] === 'number' && this.mayWiden()) {
      // The device's own options (QoS, no-local, retain handling) for the filter it asked for.
      upstream.push({ ...packet.subscriptions[base], topic: this.policy.subscribe(TB_CHUNKS) as string });
      this.widened = true;
    }
    const messageId = packet.messageId ?? 0;
    if (upstream.length === 0) return { suback: { cmd: 'suback', messageId, granted: slots.map((s) => (s as { code: number }).code) } };
    this.pendingSubs.set(messageId, { slots, filters: packet.subscriptions.map((sub) => sub.topic) });
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

  /** The SUBACK for the device, and the device's filters the broker granted (its own topic names). */
  suback(packet: mqtt.ISubackPacket): { packet: mqtt.ISubackPacket; granted: string[] } {
    const id = packet.messageId ?? 0;
    const pending = this.pendingSubs.get(id);
    if (!pending) return { packet, granted: [] };
    this.pendingSubs.delete(id);
    const codes = packet.granted as number[];
    const out = pending.slots.map((i) => (typeof i === 'number' ? (codes[i] ?? this.failureCode) : i.code));
    // Codes 0-2 grant a QoS; 0x80 and up refuse (MQTT 3.1.1 and 5 alike).
    const granted = pending.filters.filter((_f, k) => out[k] < 0x80);
    return { packet: { ...packet, granted: out }, granted };
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

  /** How many filters the device named in the UNSUBSCRIBE this UNSUBACK answers (before unsuback()). */
  unsubscribeCount(packet: mqtt.IUnsubackPacket): number | undefined {
    return this.pendingUnsubs.get(packet.messageId ?? 0);
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
