import { createHmac, randomInt, timingSafeEqual } from 'crypto';
import { OtaError } from '../types';

// How a Tencent IoT device says who it is, as the IoT Explorer C SDK builds its CONNECT
// (tencentyun/qcloud-iot-explorer-sdk-embedded-c 810ac68; the IoT Hub SDK
// qcloud-iot-sdk-embedded-c df06a4b does the same):
// - client id `{productId}{deviceName}`: sdk_src/protocol/mqtt/mqtt_client.c:86;
// - username `{clientId};{sdkappid};{connid};{expiry}`: mqtt_client_connect.c:143-145, where
//   sdkappid is a constant of the SDK (qcloud_iot_common.h:25, "21010406"; other Tencent SDKs send
//   "12010126"), connid 5 random letters and digits (mqtt_client_common.c:76-96), and expiry the
//   time in seconds after which the signature is void: now + MAX_ACCESS_EXPIRE_TIMEOUT, or LONG_MAX
//   when that is 0, the SDK's default (mqtt_client_connect.c:129-132, qcloud_iot_export_variables.h:53);
// - password `{hex};hmacsha1`: HMAC-SHA1 of the username in lower-case hex
//   (utils_hmac.c:84-131, utils_md5.c:306-310), keyed with the base64-decoded device secret
//   (mqtt_client.c:102-106), mqtt_client_connect.c:147-158. Tencent's other device SDKs (Java,
//   Android, AT firmware) sign with HMAC-SHA256 and the suffix `;hmacsha256`: both are accepted.
// Its topics carry the device name alone: `$ota/update/{productId}/{deviceName}`
// (sdk_src/services/ota/ota_mqtt.c:58,166) and `$ota/report/...` (ota_mqtt.c:230-242).

export type TencentSignature = 'hmacsha1' | 'hmacsha256';

/** The SDK's own sdkappid (qcloud_iot_common.h:25). */
export const SDK_APPID = '21010406';
/** What the SDK sends as expiry by default: LONG_MAX on a 64-bit build (mqtt_client_connect.c:130-132). */
export const NEVER_EXPIRES = '9223372036854775807';
/** The SDK's HMAC refuses keys longer than one SHA block (utils_hmac.c:91, KEY_IOPAD_SIZE 64). */
const MAX_SECRET_BYTES = 64;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const USERNAME = /^([^;]{1,256});([^;]{0,32});([^;]{0,32});(\d{1,20})$/;
const PASSWORD = /^([0-9a-fA-F]{40}|[0-9a-fA-F]{64});(hmacsha1|hmacsha256)$/;
const CONNID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** The SDK's client id for a device (mqtt_client.c:86). */
export function tencentClientId(product: string, device: string): string {
  return `${product}${device}`;
}

/**
 * A device secret as Tencent's console and the SDK's device_info.json show it (base64), checked
 * and decoded: the HMAC key. Throws OtaError naming `field`.
 */
export function parseDeviceSecret(value: unknown, field = 'deviceSecret'): Buffer {
  if (typeof value !== 'string' || value === '' || value.length > 88 || !BASE64.test(value)) {
    throw new OtaError('bad_field', `${field} must be the device secret as Tencent shows it: base64, at most 64 bytes once decoded`, field);
  }
  const key = Buffer.from(value, 'base64');
  if (key.length === 0 || key.length > MAX_SECRET_BYTES) throw new OtaError('bad_field', `${field} must decode to 1-64 bytes`, field);
  return key;
}

function sign(username: string, key: Buffer, algorithm: TencentSignature): string {
  return createHmac(algorithm === 'hmacsha1' ? 'sha1' : 'sha256', key).update(username).digest('hex');
}

export interface SignOptions {
  /** Seconds since the epoch after which the signature is void; default never, as the SDK. */
  expiry?: number | string;
  connId?: string;
  sdkAppId?: string;
  algorithm?: TencentSignature;
}

/** The username and password a Tencent SDK sends (for the simulator and tests). */
export function signedCredentials(clientId: string, deviceSecret: string, o: SignOptions = {}): { username: string; password: string } {
  const key = parseDeviceSecret(deviceSecret);
  const connId = o.connId ?? Array.from({ length: 5 }, () => CONNID_ALPHABET[randomInt(CONNID_ALPHABET.length)]).join('');
  const username = `${clientId};${o.sdkAppId ?? SDK_APPID};${connId};${o.expiry ?? NEVER_EXPIRES}`;
  const algorithm = o.algorithm ?? 'hmacsha1';
  return { username, password: `${sign(username, key, algorithm)};${algorithm}` };
}

/** True when a password has the shape of a Tencent signature (the device means device-secret auth). */
export function isSignedPassword(password: string | undefined): boolean {
  return password !== undefined && PASSWORD.test(password);
}

export type SignatureCheck = { ok: true } | { ok: false; reason: 'malformed' | 'wrong_client' | 'expired' | 'bad_signature' };

/**
 * Checks a Tencent signed username/password for `clientId` against the device's key: the
 * username must name this client id (a signature lent by another device proves nothing), must not
 * have expired more than `skewSeconds` ago, and the HMAC must match (constant-time compare).
 */
export function checkSignature(
  creds: { clientId: string; username?: string; password?: string },
  key: Buffer,
  nowSeconds: number,
  skewSeconds = 300,
): SignatureCheck {
  const u = creds.username === undefined ? null : USERNAME.exec(creds.username);
  const p = creds.password === undefined ? null : PASSWORD.exec(creds.password);
  if (!u || !p) return { ok: false, reason: 'malformed' };
  const algorithm = p[2] as TencentSignature;
  if (p[1].length !== (algorithm === 'hmacsha1' ? 40 : 64)) return { ok: false, reason: 'malformed' };
  if (u[1] !== creds.clientId) return { ok: false, reason: 'wrong_client' };
  // LONG_MAX does not fit a double exactly: compare as integers.
  if (BigInt(u[4]) + BigInt(Math.max(0, Math.floor(skewSeconds))) < BigInt(Math.floor(nowSeconds))) return { ok: false, reason: 'expired' };
  const expected = Buffer.from(sign(creds.username as string, key, algorithm), 'hex');
  const given = Buffer.from(p[1], 'hex');
  return timingSafeEqual(expected, given) ? { ok: true } : { ok: false, reason: 'bad_signature' };
}
