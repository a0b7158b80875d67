import type * as mqtt from 'mqtt-packet';

// Every reason code the gateway writes to a device goes through here: what MQTT 3.1.1 and MQTT 5
// allow in each packet (MQTT 5.0 section 2.4 table 2-6 and each packet's own table; 3.1.1
// sections 3.2.2.3 and 3.9.3). A code a broker or our own code got wrong is replaced by the
// packet's generic failure, never sent as is: a client may drop the connection on an unknown
// code, or worse, read it as success.

type Version = 3 | 4 | 5;

const V5: Record<string, ReadonlySet<number>> = {
  connack: new Set([0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f]),
  puback: new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]),
  pubrec: new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]),
  pubrel: new Set([0x00, 0x92]),
  pubcomp: new Set([0x00, 0x92]),
  suback: new Set([0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2]),
  unsuback: new Set([0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91]),
  // Server to client only: 0x04 (disconnect with will) is the client's to send.
  disconnect: new Set([0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2]),
  auth: new Set([0x00, 0x18, 0x19]),
};

const V4: Record<string, ReadonlySet<number>> = {
  connack: new Set([0, 1, 2, 3, 4, 5]),
  suback: new Set([0, 1, 2, 0x80]),
};

/** What replaces an invalid code: the packet's own "it failed, no detail". */
const FALLBACK_V5: Record<string, number> = {
  connack: 0x80,
  puback: 0x80,
  pubrec: 0x80,
  pubrel: 0x92,
  pubcomp: 0x92,
  suback: 0x80,
  unsuback: 0x80,
  disconnect: 0x80,
  auth: 0x18,
};
// 3.1.1 CONNACK: 3 "server unavailable", so the device retries later rather than giving up.
const FALLBACK_V4: Record<string, number> = { connack: 3, suback: 0x80 };

/** True when `code` may appear in a `cmd` packet sent to a device speaking `version`. */
export function isValidReasonCode(cmd: string, code: number, version: Version): boolean {
  const table = version === 5 ? V5 : V4;
  return table[cmd]?.has(code) ?? false;
}

/** The codes a packet carries, by where mqtt-packet keeps them for this version. */
export function reasonCodesOf(packet: mqtt.Packet, version: Version): number[] {
  const single = singleCode(packet, version);
  if (single === NO_CODE) return [];
  if (single !== MANY) return [single];
  if (packet.cmd === 'suback') return (packet.granted as number[]).slice();
  return packet.cmd === 'unsuback' && version === 5 && Array.isArray(packet.granted) ? (packet.granted as number[]).slice() : [];
}

const NONE: readonly number[] = [];
const NO_CODE = -1;
const MANY = -2;

/** reasonCodesOf for the packets with at most one code, without an array: the code, NO_CODE, or MANY (SUBACK, UNSUBACK). */
function singleCode(packet: mqtt.Packet, version: Version): number {
  switch (packet.cmd) {
    case 'publish':
      return NO_CODE;
    case 'connack':
      return (version === 5 ? packet.reasonCode : packet.returnCode) ?? 0;
    case 'suback':
    case 'unsuback':
      return MANY;
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
    case 'disconnect':
    case 'auth':
      return version === 5 ? (packet.reasonCode ?? 0) : NO_CODE;
    default:
      return NO_CODE;
  }
}

/**
 * The packet with every invalid code replaced by its packet's fallback, and the codes replaced.
 * Packets without codes for this version come back as they are.
 */
export function withValidReasonCodes<P extends mqtt.Packet>(packet: P, version: Version): { packet: P; invalid: readonly number[] } {
  // Every chunk and every acknowledgement a device hears passes here: the packets that carry no
  // code (PUBLISH, PINGRESP) or one valid code cost no arrays.
  const single = singleCode(packet, version);
  if (single === NO_CODE || (single !== MANY && isValidReasonCode(packet.cmd, single, version))) return { packet, invalid: NONE };
  const invalid = reasonCodesOf(packet, version).filter((c) => !isValidReasonCode(packet.cmd, c, version));
  if (invalid.length === 0) return { packet, invalid };
  const fallback = (version === 5 ? FALLBACK_V5 : FALLBACK_V4)[packet.cmd];
  const fix = (c: number) => (isValidReasonCode(packet.cmd, c, version) ? c : fallback);
  const p = packet as mqtt.Packet;
  let out: mqtt.Packet;
  if (p.cmd === 'connack') out = version === 5 ? { ...p, reasonCode: fallback } : { ...p, returnCode: fallback };
  else if (p.cmd === 'suback' || p.cmd === 'unsuback') out = { ...p, granted: (p.granted as number[]).map(fix) };
  else out = { ...p, reasonCode: fallback } as mqtt.Packet;
  return { packet: out as P, invalid };
}
