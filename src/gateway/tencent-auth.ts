import type { DeviceRecord } from '../core/types';
import { checkSignature, isSignedPassword } from '../core/dialects/tencent-identity';

// Tencent devices at the front door (core/dialects/tencent-identity.ts has the SDK's formats).
// The SDK connects with client id `{product}{deviceName}` while its topics carry the device name
// alone, so the device is registered under its name with attribute `product` (or the product the
// gateway is told), and found here from the client id.

/** Longest client id worth splitting: a device id (128) plus a product id (Tencent's are 10). */
const MAX_CLIENT_ID = 256;

export interface TencentMatch {
  device: DeviceRecord;
  product: string;
}

/**
 * Every registered Tencent device whose `{product}{name}` is this client id. Usually one; two
 * only when names and products overlap (product `P1` + `dev` and `P` + `1dev`).
 */
export function tencentCandidates(clientId: string, lookup: (id: string) => DeviceRecord | undefined, defaultProduct?: string): TencentMatch[] {
  const out: TencentMatch[] = [];
  if (clientId.length < 2 || clientId.length > MAX_CLIENT_ID) return out;
  for (let k = 1; k < clientId.length; k++) {
    const device = lookup(clientId.slice(k));
    if (device?.dialect !== 'tencent') continue;
    const product = device.attributes.product ?? defaultProduct;
    if (product === clientId.slice(0, k)) out.push({ device, product });
  }
  return out;
}

/**
 * Whether a Tencent device's username/password prove it holds `key`, its device secret. Anything
 * but a valid signature (no password, a token, a wrong or expired one) is a bad signature: a device
 * with a secret never falls back to its client id alone.
 */
export function signedBy(creds: { clientId: string; username?: string; password?: string }, key: Buffer, nowSeconds: number, skewSeconds?: number): boolean {
  return isSignedPassword(creds.password) && checkSignature(creds, key, nowSeconds, skewSeconds).ok;
}
