import * as mqtt from 'mqtt';
import type { Duplex } from 'stream';

// mqtt.js 5 builds its socket in a streamBuilder; we wrap it so that every socket, including the
// ones a reconnect builds, has TCP_NODELAY before the first byte (chunk round trips otherwise
// wait on Nagle's algorithm, about 40 ms each). `manualConnect` lets us wrap before connecting.

export interface ConnectOptions {
  clientId: string;
  username?: string;
  password?: string;
  reconnectMs: number;
  connectTimeoutMs?: number;
  /** 4 (MQTT 3.1.1, default) or 5. */
  protocolVersion?: 4 | 5;
  /** Last will (Tasmota's LWT "Offline", retained). */
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
}

type NoDelayStream = Duplex & { setNoDelay?: (noDelay?: boolean) => unknown };

export function connectClient(broker: string, opts: ConnectOptions): mqtt.MqttClient {
  const client = mqtt.connect(broker, {
    clientId: opts.clientId,
    username: opts.username,
    password: opts.password,
    protocolVersion: opts.protocolVersion ?? 4,
    clean: true,
    reconnectPeriod: opts.reconnectMs,
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    // The device's own code subscribes again on every connect, as firmware does.
    resubscribe: false,
    manualConnect: true,
    ...(opts.will ? { will: { ...opts.will, payload: Buffer.from(opts.will.payload) } } : {}),
  });
  // streamBuilder is private in mqtt.js's typings but a plain field at run time (checked on 5.16).
  const internals = client as unknown as { streamBuilder: (c: mqtt.MqttClient) => Duplex };
  const build = internals.streamBuilder;
  internals.streamBuilder = (c) => {
    const stream = build(c) as NoDelayStream;
    if (typeof stream.setNoDelay === 'function') stream.setNoDelay(true);
    return stream;
  };
  client.connect();
  return client;
}

/** Whether the socket under a client has TCP_NODELAY set (for tests; reads Node's internal flag). */
export function hasNoDelay(client: mqtt.MqttClient): boolean | undefined {
  const stream = client.stream as unknown as Record<symbol, unknown> | undefined;
  if (!stream) return undefined;
  const sym = Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kSetNoDelay');
  return sym ? Boolean(stream[sym]) : undefined;
}
