import * as net from 'net';
import * as tls from 'tls';

// Where the gateway's per-device upstream connections go.

export interface UpstreamOptions {
  host: string;
  port: number;
  tls: boolean;
  username?: string;
  password?: string;
  /** CA, client certificate, servername, verification for a TLS broker (an mqtt-broker node's tls-config). */
  tlsOptions?: tls.ConnectionOptions;
}

/** Parses `mqtt://host:port` (or `tcp:`, `mqtts:`, `ssl:`, `tls:`); user:pass in the URL count too. */
export function parseBrokerUrl(url: string, creds: { username?: string; password?: string } = {}): UpstreamOptions {
  let parsed: URL;
  try {
    parsed = new URL(url.includes('://') ? url : `mqtt://${url}`);
  } catch {
    throw new Error(`upstream broker URL is not valid: ${redactUrl(url)}`);
  }
  const secure = ['mqtts:', 'ssl:', 'tls:'].includes(parsed.protocol);
  if (!secure && !['mqtt:', 'tcp:'].includes(parsed.protocol)) {
    throw new Error(`upstream broker URL must start with mqtt:// or mqtts://, not ${parsed.protocol}//`);
  }
  if (!parsed.hostname) throw new Error(`upstream broker URL has no host: ${redactUrl(url)}`);
  const port = parsed.port ? Number(parsed.port) : secure ? 8883 : 1883;
  const username = creds.username || decodeURIComponent(parsed.username) || undefined;
  const password = creds.password || decodeURIComponent(parsed.password) || undefined;
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port, tls: secure, username, password };
}

/** A broker URL fit for a log line: any `user:password@` in it replaced by `***@`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/)?[^/@]*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

export function connectUpstream(options: UpstreamOptions): net.Socket {
  const socket = options.tls
    ? tls.connect({ servername: net.isIP(options.host) ? undefined : options.host, ...options.tlsOptions, host: options.host, port: options.port })
    : net.connect({ host: options.host, port: options.port });
  // Chunk round trips are small request/response pairs: Nagle would stall each one.
  socket.setNoDelay(true);
  return socket;
}
