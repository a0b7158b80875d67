import * as net from 'net';
import type * as tls from 'tls';
import { EventEmitter } from 'events';
import { DeviceAttributes } from '../core/types';
import { DeviceDirectory, DeviceIdentity } from './directory';
import { GatewayLimits, resolveLimits } from './limits';
import { LogLimiter, printable } from './log-limit';
import { AclRule, policyFor, TopicPolicy } from './policy';
import { DeviceSession } from './session';
import { connectUpstream, parseBrokerUrl, UpstreamOptions } from './upstream';
import { BrokerProtocol, isUpstreamProtocol, UpstreamProtocol } from './protocol-bridge';
import type { NoticeGate } from './notice-gate';

// The device front door: a TCP listener that gives every device connection its own session
// (see session.ts) and keeps the counters a status dot needs.

export interface GatewayOptions {
  directory: DeviceDirectory;
  /** `mqtt://host:port` or `mqtts://host:port` of the real broker. */
  upstream: string;
  upstreamUsername?: string;
  upstreamPassword?: string;
  /** TLS options for an mqtts:// upstream (CA, client certificate, servername, rejectUnauthorized). */
  upstreamTls?: tls.ConnectionOptions;
  /** First topic level of the per-device namespaces: `{namespace}/{deviceId}/...`. */
  namespace?: string;
  /** Per-dialect ACL rules replacing the defaults (a namespaced dialect given rules stops being namespaced). */
  aclRules?: GatewayAclRules;
  /**
   * Attributes for devices whose record lacks them (a Tencent product, a Biotz customer, a Sming
   * app): without one, a device whose ACL rules need it is refused.
   */
  attributes?: DeviceAttributes;
  /** Make `v2/fw/response/+` receive chunk replies, as on ThingsBoard (default true). */
  widenThingsboard?: boolean;
  connectTimeoutMs?: number;
  /** How long the directory may take to answer a CONNECT before the device is refused (default 10 s). */
  authTimeoutMs?: number;
  closeGraceMs?: number;
  /** The broker's MQTT version for MQTT 5 devices: `auto` (default) learns it, `3.1.1` bridges them always. */
  upstreamProtocol?: UpstreamProtocol;
  /** What one connection may cost (see limits.ts); each missing value gets its default. */
  limits?: Partial<GatewayLimits>;
  /** 'refused', 'denied', 'malformed' and 'error' events of each kind per 10 s; the rest are counted only. */
  maxEventsPerKind?: number;
  /** Holds Sming's shared notice back from devices a rollout has not released (notice-gate.ts). */
  noticeGate?: NoticeGate;
}

export type GatewayAclRules = Parameters<typeof policyFor>[1]['aclRules'];
export type { AclRule };

export interface GatewayCounters {
  /** Device connections the broker accepted, now open. */
  connected: number;
  accepted: number;
  refused: number;
  deniedPublish: number;
  deniedSubscribe: number;
  malformed: number;
  /** Connections closed for a packet over the size limit. */
  tooLarge: number;
  /** Device connections closed (without CONNACK) because the broker stayed unreachable. */
  brokerUnavailable: number;
  published: number;
  delivered: number;
  errors: number;
}

export interface ConnectEvent {
  deviceId: string;
  dialect: string;
  clientId: string;
  remote: string;
}
export interface DisconnectEvent extends ConnectEvent {
  reason: string;
}
/** A CONNECT refused. Never the username or password: a ThingsBoard username is its token. */
export interface RefusedEvent {
  clientId: string;
  reason: string;
  remote: string;
  /** A known device refused because its ACL rules need an attribute it lacks: which, in `message`. */
  deviceId?: string;
  message?: string;
}
/** A device's SUBSCRIBE the broker answered: the filters granted, in the device's own topic names. */
export interface SubscribeEvent extends ConnectEvent {
  filters: string[];
}

/** What a session needs from its gateway. */
export interface GatewayContext {
  directory: DeviceDirectory;
  upstream: UpstreamOptions;
  counters: GatewayCounters;
  widenThingsboard: boolean;
  connectTimeoutMs: number;
  authTimeoutMs: number;
  closeGraceMs: number;
  /** What the broker speaks (protocol-bridge.ts). */
  protocol: BrokerProtocol;
  limits: GatewayLimits;
  noticeGate?: NoticeGate;
  policyFor(device: DeviceIdentity): TopicPolicy;
  connectUpstream(): net.Socket;
  emit(event: string, payload: unknown): void;
  sessionOpened(session: DeviceSession): void;
  sessionSubscribed(session: DeviceSession, filters: string[]): void;
  sessionClosed(session: DeviceSession, wasOpen: boolean, reason: string): void;
  brokerUnavailable(session: DeviceSession, why: string): void;
}

/** Events a device can cause at will: rate-limited per kind, their strings escaped and cut short. */
const DEVICE_DRIVEN = new Set(['refused', 'denied', 'malformed', 'error']);
const EVENT_WINDOW_MS = 10_000;

function sanitized(payload: unknown): unknown {
  if (payload instanceof Error) return new Error(printable(payload.message, 300));
  if (!payload || typeof payload !== 'object') return payload;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(payload)) out[key] = typeof value === 'string' && key !== 'deviceId' ? printable(value) : value;
  return out;
}

const NAMESPACE = /^[^/+#]+(\/[^/+#]+)*$/;

export class OtaGateway extends EventEmitter {
  readonly counters: GatewayCounters = {
    connected: 0,
    accepted: 0,
    refused: 0,
    deniedPublish: 0,
    deniedSubscribe: 0,
    malformed: 0,
    tooLarge: 0,
    brokerUnavailable: 0,
    published: 0,
    delivered: 0,
    errors: 0,
  };
  readonly namespace: string;
  /** The broker's protocol as learned, and what bridging MQTT 5 devices to 3.1.1 dropped or refused. */
  readonly protocol: BrokerProtocol;
  private readonly server: net.Server;
  private readonly sessions = new Set<DeviceSession>();
  private readonly ctx: GatewayContext;
  private readonly unwatch?: () => void;

  constructor(options: GatewayOptions) {
    super();
    const namespace = (options.namespace ?? 'ota').replace(/\/+$/, '');
    if (!NAMESPACE.test(namespace) || namespace.includes('\u0000')) throw new Error(`namespace must be topic levels without wildcards: ${JSON.stringify(options.namespace)}`);
    this.namespace = namespace;
    const upstream = { ...parseBrokerUrl(options.upstream, { username: options.upstreamUsername, password: options.upstreamPassword }), tlsOptions: options.upstreamTls };
    const aclRules = options.aclRules;
    const attributes = options.attributes;
    const limits = resolveLimits(options.limits);
    const events = new LogLimiter(options.maxEventsPerKind ?? 50, EVENT_WINDOW_MS);
    const gateway = this;
    const mode = options.upstreamProtocol ?? 'auto';
    if (!isUpstreamProtocol(mode)) throw new Error(`upstream protocol must be auto, 5 or 3.1.1, not ${JSON.stringify(mode)}`);
    // One line, at most once a minute per kind, whichever way it is logged.
    this.protocol = new BrokerProtocol(mode, `${upstream.host}:${upstream.port}`, (notice) => gateway.emit('protocol', notice));
    this.ctx = {
      directory: options.directory,
      upstream,
      counters: this.counters,
      widenThingsboard: options.widenThingsboard ?? true,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      authTimeoutMs: options.authTimeoutMs ?? 10_000,
      closeGraceMs: options.closeGraceMs ?? 2_000,
      protocol: this.protocol,
      limits,
      noticeGate: options.noticeGate,
      policyFor: (device) => policyFor(device, { namespace, aclRules, attributes }),
      connectUpstream: () => connectUpstream(upstream),
      emit: (event, payload) => {
        // An 'error' nobody listens to would throw: the gateway reports, it never crashes.
        if (event === 'error' && gateway.listenerCount('error') === 0) return;
        if (!DEVICE_DRIVEN.has(event)) {
          gateway.emit(event, payload);
          return;
        }
        const dropped = events.allow(event);
        if (dropped === false) return;
        const out = sanitized(payload);
        if (dropped > 0 && out && typeof out === 'object') Object.assign(out, { dropped });
        gateway.emit(event, out);
      },
      sessionOpened: (session) => {
        this.counters.connected++;
        this.emit('connect', this.describe(session));
        this.emit('change', this.counters);
      },
      sessionSubscribed: (session, filters) => {
        if (session.isOpen) this.emit('subscribe', { ...this.describe(session), filters });
      },
      sessionClosed: (session, wasOpen, reason) => {
        this.sessions.delete(session);
        if (!wasOpen) return;
        this.counters.connected--;
        this.emit('disconnect', { ...this.describe(session), reason });
        this.emit('change', this.counters);
      },
      brokerUnavailable: (_session, why) => {
        this.counters.brokerUnavailable++;
        this.ctx.emit('error', new Error(`gateway: broker ${upstream.host}:${upstream.port} unavailable (${why}); devices are closed without CONNACK and reconnect`));
      },
    };
    this.server = net.createServer((socket) => {
      const session = new DeviceSession(socket, this.ctx);
      this.sessions.add(session);
    });
    this.server.on('error', (err) => this.ctx.emit('error', err));
    // A device deleted, or given a new token, loses the connections its old identity opened.
    this.unwatch = options.directory.watch?.((deviceId, reason) => this.disconnectDevice(deviceId, reason));
  }

  /** Closes every connection of one device (it was deleted, or its token or ACL changed). */
  disconnectDevice(deviceId: string, reason: string): number {
    let closed = 0;
    for (const session of [...this.sessions]) {
      if (session.device?.deviceId !== deviceId) continue;
      session.close(reason);
      closed++;
    }
    return closed;
  }

  private describe(session: DeviceSession): ConnectEvent {
    return {
      deviceId: session.device?.deviceId ?? '',
      dialect: session.device?.dialect ?? '',
      clientId: printable(session.clientId),
      remote: session.remote,
    };
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host = '127.0.0.1'): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo | null {
    return this.server.address() as net.AddressInfo | null;
  }

  /** The devices connected now. */
  connectedDevices(): ConnectEvent[] {
    return [...this.sessions].filter((s) => s.isOpen && s.device).map((s) => this.describe(s));
  }

  /** Stops listening and ends every device connection (and its upstream connection). */
  close(): Promise<void> {
    this.unwatch?.();
    return new Promise((resolve) => {
      if (!this.server.listening) {
        for (const session of [...this.sessions]) session.close('gateway closing');
        resolve();
        return;
      }
      this.server.close(() => resolve());
      for (const session of [...this.sessions]) session.close('gateway closing');
    });
  }
}
