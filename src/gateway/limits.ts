// What one device connection may cost the gateway. Every value is an option of the gateway, the
// node and the CLI; the defaults are safe for a fleet of small devices on the open network.

export interface GatewayLimits {
  /** Largest packet accepted before the device is authenticated (its CONNECT): bytes. */
  maxConnectBytes: number;
  /** Largest packet a device may send once authenticated: bytes (told to MQTT 5 devices in CONNACK). */
  maxPacketBytes: number;
  /** Bytes of a device's packets held while its broker connection is not ready: beyond, it is closed. */
  maxBufferedBytes: number;
  /** Topic aliases an MQTT 5 device may use (told in CONNACK); 0: none. */
  topicAliasMaximum: number;
  /** Publishes and subscriptions the ACL refuses, per window, before the device is disconnected. */
  maxRefused: number;
  refusedWindowMs: number;
  /** Packets of one connection handled per turn of the event loop before the others get theirs. */
  packetsPerTurn: number;
  /** How long a CONNECT is held while the broker cannot be reached, before the device is closed to retry. */
  upstreamRetryMs: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  // A CONNECT carries a client id, credentials and a will: 16 KiB is plenty for real devices.
  maxConnectBytes: 16 * 1024,
  // Devices publish chunk requests, reports and telemetry, never images.
  maxPacketBytes: 256 * 1024,
  maxBufferedBytes: 1024 * 1024,
  // Aliases save a device a few bytes per message; the gateway rewrites every topic anyway.
  // With 0 a device that uses one anyway is in breach of MQTT 5 (3.3.2.3.4) and is disconnected.
  topicAliasMaximum: 0,
  maxRefused: 100,
  refusedWindowMs: 10_000,
  packetsPerTurn: 32,
  // Shorter than the connect timeouts of mqtt.js (30 s) and our simulator (10 s): the gateway
  // closes first and the device's own reconnect loop carries on.
  upstreamRetryMs: 8_000,
};

const BOUNDS: Record<keyof GatewayLimits, [number, number]> = {
  maxConnectBytes: [128, 268_435_455],
  maxPacketBytes: [128, 268_435_455],
  maxBufferedBytes: [1024, 2 ** 31],
  topicAliasMaximum: [0, 65535],
  maxRefused: [1, 2 ** 31],
  refusedWindowMs: [1, 2 ** 31 - 1],
  packetsPerTurn: [1, 100_000],
  upstreamRetryMs: [0, 2 ** 31 - 1],
};

/** The limits in force: each given value checked, each missing (undefined, null or '') defaulted. */
export function resolveLimits(given: Partial<Record<keyof GatewayLimits, unknown>> = {}): GatewayLimits {
  const out = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof GatewayLimits)[]) {
    const raw = given[key];
    if (raw === undefined || raw === null || raw === '') continue;
    const n = Number(raw);
    const [min, max] = BOUNDS[key];
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`gateway limit ${key} must be a whole number from ${min} to ${max}, not ${JSON.stringify(raw)}`);
    out[key] = n;
  }
  return out;
}

/** Counts events in fixed windows of `windowMs`; more than `limit` in one means the device is done. */
export class WindowCounter {
  private count = 0;
  private since = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Counts one; true once more than `limit` fell in the current window. */
  hit(now = Date.now()): boolean {
    if (now - this.since >= this.windowMs) {
      this.since = now;
      this.count = 0;
    }
    this.count++;
    return this.count > this.limit;
  }
}
