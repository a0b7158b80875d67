import { DeviceChange, DeviceRegistry, isTopicSafe } from '../core/devices';
import { DeviceAttributes, DeviceRecord, DialectName, OtaError } from '../core/types';
import { signedBy, tencentCandidates } from './tencent-auth';

// How the gateway learns who a connecting device is. The gateway only sees this interface; the
// adapter below answers it from the repository's DeviceRegistry.

export interface DeviceCredentials {
  clientId: string;
  username?: string;
  password?: Buffer | string;
}

export interface DeviceIdentity {
  deviceId: string;
  dialect: DialectName;
  attributes?: DeviceAttributes;
}

/** `bad_credentials`: a token was given and is wrong; `not_authorized`: nobody we know. */
export type AuthFailure = 'bad_credentials' | 'not_authorized';

export type AuthResult = { ok: true; device: DeviceIdentity } | { ok: false; reason: AuthFailure };

export interface DeviceDirectory {
  authenticate(creds: DeviceCredentials): AuthResult | Promise<AuthResult>;
  /**
   * Optional: calls `revoked` when a device's identity stops being what its connections were
   * opened with (deleted, new token, other dialect or attributes); returns the unsubscribe.
   */
  watch?(revoked: (deviceId: string, reason: string) => void): () => void;
}

/**
 * - `token`: ThingsBoard style (access token as username) or TagoIO style (username `Token`,
 *   token as password).
 * - `client-id`: the client id is the device id; a device that has a token must also send it
 *   (as password, or as username). Tencent devices connect as `{product}{device}` (their SDK's
 *   client id) and are found under the device name; one with a device secret must sign its
 *   username as the SDK does (gateway/tencent-auth.ts).
 * - `auto`: token first, then client id.
 */
export const IDENTITY_MODES = ['auto', 'token', 'client-id'] as const;
export type IdentityMode = (typeof IDENTITY_MODES)[number];

export function isIdentityMode(value: unknown): value is IdentityMode {
  return typeof value === 'string' && (IDENTITY_MODES as readonly string[]).includes(value);
}

export interface RegistryDirectoryOptions {
  mode?: IdentityMode;
  /** Register unknown devices under this dialect instead of refusing them. */
  autoRegister?: DialectName;
  /** Tencent product of devices registered without a `product` attribute. */
  product?: string;
  /** How long after its expiry a Tencent signature is still taken (device clocks drift); default 300 s. */
  skewSeconds?: number;
  /** Clock (ms since the epoch), for tests. */
  now?: () => number;
}

const TAGO_USERNAME = 'Token';

export class RegistryDirectory implements DeviceDirectory {
  private readonly mode: IdentityMode;
  constructor(
    private readonly registry: DeviceRegistry,
    private readonly options: RegistryDirectoryOptions = {},
  ) {
    this.mode = options.mode ?? 'auto';
  }

  watch(revoked: (deviceId: string, reason: string) => void): () => void {
    const onChange = (change: DeviceChange) => {
      const reason = revocationOf(change);
      if (reason) revoked(change.id, reason);
    };
    this.registry.on('change', onChange);
    return () => this.registry.off('change', onChange);
  }

  async authenticate(creds: DeviceCredentials): Promise<AuthResult> {
    const password = creds.password === undefined ? undefined : creds.password.toString();
    const username = creds.username || undefined;
    const token = username === TAGO_USERNAME ? password : username;

    if (this.mode !== 'client-id' && token) {
      const device = this.registry.byToken(token);
      if (device) return ok(device, this.options.product);
    }
    if (this.mode !== 'token' && creds.clientId) {
      const device = this.registry.get(creds.clientId);
      if (device) return this.prove(device, creds, username, password);
      const found = tencentCandidates(creds.clientId, (id) => this.registry.get(id), this.options.product);
      if (found.length) {
        const proven = found.map((m) => ({ signs: !!m.device.sealedSecret, result: this.prove(m.device, creds, username, password, m.product) })).filter((p) => p.result.ok);
        // A valid signature outweighs a bare client id; two devices still proven alike (overlapping
        // product and device names, product `P1` + `dev` and `P` + `1dev`): refuse, never guess.
        const best = proven.some((p) => p.signs) ? proven.filter((p) => p.signs) : proven;
        if (best.length === 1) return best[0].result;
        return { ok: false, reason: best.length ? 'not_authorized' : 'bad_credentials' };
      }
    }
    if (this.options.autoRegister) return this.register(creds.clientId, token);
    return { ok: false, reason: username || password ? 'bad_credentials' : 'not_authorized' };
  }

  /** Whether a device found by its client id proved it is that device (token, Tencent signature, or nothing asked). */
  private prove(device: DeviceRecord, creds: DeviceCredentials, username?: string, password?: string, product?: string): AuthResult {
    const bad: AuthResult = { ok: false, reason: 'bad_credentials' };
    if (device.sealedSecret) {
      // A secret that does not open (the repository secret changed) refuses: never fall back to the client id.
      const key = this.registry.deviceSecret(device.id);
      const now = (this.options.now ?? Date.now)() / 1000;
      const signed = key !== undefined && signedBy({ clientId: creds.clientId, username, password }, key, now, this.options.skewSeconds);
      return signed ? ok(device, product ?? this.options.product) : bad;
    }
    if (!device.tokenHash) return ok(device, product ?? this.options.product);
    const given = [password, username].filter((v): v is string => !!v);
    return given.some((t) => this.registry.checkToken(device.id, t)) ? ok(device, product ?? this.options.product) : bad;
  }

  /** Auto-registration: the client id becomes the device id, the token (if any) its token. */
  private async register(clientId: string, token: string | undefined): Promise<AuthResult> {
    if (!isTopicSafe(clientId) || this.registry.get(clientId)) return { ok: false, reason: 'not_authorized' };
    try {
      const { device } = await this.registry.register({ id: clientId, dialect: this.options.autoRegister, token });
      return ok(device);
    } catch (err) {
      if (err instanceof OtaError) return { ok: false, reason: 'not_authorized' };
      throw err;
    }
  }
}

/** A Tencent device registered without its product takes the gateway's (its topics need one). */
function ok(device: { id: string; dialect: DialectName; attributes: DeviceAttributes }, product?: string): AuthResult {
  const attributes = device.dialect === 'tencent' && product && !device.attributes.product ? { ...device.attributes, product } : device.attributes;
  return { ok: true, device: { deviceId: device.id, dialect: device.dialect, attributes } };
}

/** Why a change ends the device's live connections, or null when they stay valid. */
function revocationOf({ before, after }: DeviceChange): string | null {
  if (!before) return null;
  if (!after) return 'device deleted';
  if (before.tokenHash !== after.tokenHash) return 'device token changed';
  if (before.sealedSecret !== after.sealedSecret) return 'device secret changed';
  if (before.dialect !== after.dialect || JSON.stringify(sorted(before.attributes)) !== JSON.stringify(sorted(after.attributes))) return 'device identity changed';
  return null;
}

function sorted(attributes: DeviceAttributes): [string, string | undefined][] {
  return Object.entries(attributes).sort(([a], [b]) => a.localeCompare(b));
}
