import { createHmac, timingSafeEqual } from 'crypto';

// Per-device download URLs: /ota/dl/{firmwareId}/{device}?e={expiry seconds}&s={signature}.
// The signature is an HMAC-SHA256 over firmware, device and expiry under the repository secret,
// so a URL cannot be moved to another image or device, nor its expiry extended.

export const DEFAULT_URL_TTL_SECONDS = 7 * 24 * 3600; // the Biotz "one week", S3's presign maximum

export interface SignedParts {
  firmware: string;
  device: string;
  expires: number; // unix seconds
}

export type Verdict = { ok: true } | { ok: false; status: 403 | 410; reason: string };

export function signParts(secret: Buffer, parts: SignedParts): string {
  return createHmac('sha256', secret)
    .update(`${parts.firmware}\n${parts.device}\n${parts.expires}`)
    .digest('base64url');
}

/** Path and query (no origin) of a signed download URL. */
export function signedPath(secret: Buffer, basePath: string, parts: SignedParts): string {
  const sig = signParts(secret, parts);
  const base = basePath.replace(/\/+$/, '');
  return `${base}/${encodeURIComponent(parts.firmware)}/${encodeURIComponent(parts.device)}?e=${parts.expires}&s=${sig}`;
}

export function verifySignature(secret: Buffer, parts: SignedParts, signature: string, nowSeconds: number): Verdict {
  const expected = Buffer.from(signParts(secret, parts));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, status: 403, reason: 'bad signature' };
  }
  if (!Number.isFinite(parts.expires) || parts.expires < nowSeconds) {
    return { ok: false, status: 410, reason: 'link expired' };
  }
  return { ok: true };
}

// The compact form, for devices that keep only a short URL (Tasmota reads at most 150 characters
// of its OtaUrl, docs/tasmota.md): {base}/{firmwareId}/{device}/{key}/{file}, where key is the
// expiry in base 36 followed by 22 base64url characters: the first 128 bits of an HMAC-SHA256
// over a domain tag, firmware, device and expiry. 128 bits is what RFC 2104 section 5 allows a
// truncated HMAC (at least half the output, at least 80 bits); the domain tag keeps a compact key
// from ever being a long-form signature and back. The file name is not signed: the server maps
// it to the signed firmware or its minimal companion (download.ts), nothing else.

export const COMPACT_SIGNATURE_CHARS = 22;

export function signCompact(secret: Buffer, parts: SignedParts): string {
  const mac = createHmac('sha256', secret).update(`compact\n${parts.firmware}\n${parts.device}\n${parts.expires}`).digest();
  return parts.expires.toString(36) + mac.subarray(0, 16).toString('base64url');
}

/** Characters a compact URL's path segments may hold: no '%' (Tasmota formats an OtaUrl holding "%d"). */
const SEGMENT = /^[A-Za-z0-9_.~-]+$/;

export function isCompactSegment(value: string): boolean {
  return SEGMENT.test(value) && value !== '.' && value !== '..';
}

/** Path (no origin) of a compact signed URL; throws when firmware or device cannot stand in a path unescaped. */
export function compactSignedPath(secret: Buffer, basePath: string, parts: SignedParts, file: string): string {
  for (const [what, value] of [['firmware id', parts.firmware], ['device id', parts.device], ['file name', file]] as const) {
    if (!isCompactSegment(value)) throw new Error(`the ${what} ${JSON.stringify(value)} needs escaping in a URL; compact URLs take A-Z a-z 0-9 _ . ~ - only`);
  }
  const base = basePath.replace(/\/+$/, '');
  return `${base}/${parts.firmware}/${parts.device}/${signCompact(secret, parts)}/${file}`;
}

/** Splits and checks a compact key; the expiry comes from the key itself. */
export function verifyCompact(secret: Buffer, firmware: string, device: string, key: string, nowSeconds: number): Verdict & { expires?: number } {
  const head = key.slice(0, -COMPACT_SIGNATURE_CHARS);
  if (key.length <= COMPACT_SIGNATURE_CHARS || !/^[0-9a-z]{1,11}$/.test(head)) return { ok: false, status: 403, reason: 'bad signature' };
  const expires = parseInt(head, 36);
  const expected = Buffer.from(signCompact(secret, { firmware, device, expires }));
  const given = Buffer.from(key);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, status: 403, reason: 'bad signature' };
  if (!Number.isSafeInteger(expires) || expires < nowSeconds) return { ok: false, status: 410, reason: 'link expired' };
  return { ok: true, expires };
}
