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
