import * as net from 'net';
import * as mqtt from 'mqtt-packet';
import { AuthFailure, DeviceIdentity } from './directory';
import { encode } from './encode';
import { PacedReader, PacketTooLarge } from './framing';
import { printable } from './log-limit';
import { IncompleteIdentityError, NamespacePolicy, TopicPolicy } from './policy';
import * as bridge from './protocol-bridge';
import { withValidReasonCodes } from './reason-codes';
import { NOT_AUTHORIZED_V5, PacketRelay } from './relay';
import { UpstreamLink } from './upstream-link';
import type { GatewayContext } from './gateway';

// One device connection and its own upstream connection: the device's side and the session's
// states (CONNECT, authentication, linking to the broker, open, closed). upstream-link.ts
// connects to the broker until its CONNACK; relay.ts then carries each packet both ways. The
// gateway never originates packets on the upstream leg (its packet ids belong to the device); it
// only answers the device itself where it refuses something.

type Version = bridge.Version;

/** MQTT 5 "not authorized", sent by the relay; exported here beside CONNACK_CODES. */
export { NOT_AUTHORIZED_V5 };
const PACKET_TOO_LARGE_V5 = 0x95;
const MAX_QUEUED = 1000;
const NONE_FULL: readonly net.Socket[] = [];
const needsDrain = (s: net.Socket): boolean => !s.destroyed && s.writableNeedDrain;

/** The CONNACKs the gateway itself refuses with. "Unavailable" has none: see upstream-link.ts. */
export const CONNACK_CODES: Record<AuthFailure | 'identifier_rejected' | 'bad_auth_method', { v4: number; v5: number }> = {
  bad_credentials: { v4: 4, v5: 0x86 },
  not_authorized: { v4: 5, v5: 0x87 },
  identifier_rejected: { v4: 2, v5: 0x85 },
  // MQTT 5 enhanced authentication: the gateway authenticates devices itself, with no AUTH exchange.
  bad_auth_method: { v4: 4, v5: bridge.RC.badAuthenticationMethod },
};

export class DeviceSession {
  readonly remote: string;
  device?: DeviceIdentity;
  clientId = '';
  /** linking: authenticated, waiting for the broker's CONNACK (held, and retried, while the broker is down). */
  private state: 'connecting' | 'authenticating' | 'linking' | 'open' | 'closed' = 'connecting';
  private version: Version = 4;
  private reportedBadCode = false;
  /** The broker side, from open() on (upstream-link.ts). */
  private link?: UpstreamLink;
  /** Each packet both ways once linked (relay.ts). */
  private relay?: PacketRelay;
  private readonly parser = mqtt.parser();
  private readonly reader: PacedReader;
  /** Size of the packet being parsed (the framer's), for the queue's byte count. */
  private packetBytes = 0;
  private queue: mqtt.Packet[] = [];
  private queuedBytes = 0;
  private connackSent = false;
  /** True once the gateway counted this device as connected. */
  private announced = false;
  private connectTimer?: NodeJS.Timeout;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: GatewayContext,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => this.close('no CONNECT in time'), ctx.connectTimeoutMs);
    this.connectTimer.unref();
    const limits = ctx.limits;
    this.parser.on('packet', (packet) => this.fromDevice(packet));
    this.parser.on('error', (err: Error) => this.malformed(err.message));
    // Until the device is authenticated only a CONNECT-sized packet is read.
    this.reader = new PacedReader(socket, limits.maxConnectBytes, limits.packetsPerTurn, {
      packet: (bytes) => {
        this.packetBytes = bytes.length;
        try {
          this.parser.parse(bytes);
        } catch (err) {
          this.malformed((err as Error).message);
        }
      },
      error: (err) => this.tooLarge(err),
      turnStart: () => this.link?.socket?.cork(),
      turnEnd: () => {
        const up = this.link?.socket;
        up?.uncork();
        const upFull = !!up && needsDrain(up);
        const deviceFull = needsDrain(socket);
        // Every turn of every device ends here: no arrays for the usual case, where neither is full.
        if (!upFull && !deviceFull) return NONE_FULL;
        return upFull && deviceFull ? [up, socket] : [upFull ? (up as net.Socket) : socket];
      },
    });
    socket.on('error', () => this.close('device socket error'));
    socket.on('close', () => this.close('device closed'));
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  // ---- device to broker -------------------------------------------------------------------

  private fromDevice(packet: mqtt.Packet): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      if (packet.cmd !== 'connect') return this.malformed(`expected CONNECT, got ${packet.cmd.toUpperCase()}`);
      this.onConnect(packet);
      return;
    }
    if (this.state === 'authenticating' || this.state === 'linking') {
      this.queuedBytes += this.packetBytes;
      if (this.queue.length >= MAX_QUEUED || this.queuedBytes > this.ctx.limits.maxBufferedBytes) {
        return this.close(`over ${MAX_QUEUED} packets or ${this.ctx.limits.maxBufferedBytes} bytes before the broker accepted the connection`);
      }
      this.queue.push(packet);
      return;
    }
    if (packet.cmd === 'connect') return this.malformed('second CONNECT');
    (this.relay as PacketRelay).fromDevice(packet);
  }

  private onConnect(packet: mqtt.IConnectPacket): void {
    clearTimeout(this.connectTimer);
    this.version = (packet.protocolVersion ?? 4) as Version;
    this.clientId = packet.clientId;
    this.state = 'authenticating';
    // An empty client id with a persistent session: MQTT 3.1.1 says refuse ([MQTT-3.1.3-8],
    // code 2). MQTT 5 would let the server assign one, but a session nobody can name again is
    // left behind on the broker by every such connect: refused too (0x85).
    if (!packet.clientId && !packet.clean) return this.refuse('identifier_rejected');
    if (this.version === 5 && packet.properties?.authenticationMethod !== undefined) return this.refuse('bad_auth_method');
    const creds = { clientId: packet.clientId, username: packet.username, password: packet.password };
    // A directory that never answers (a custom one calling a backend that hangs) must not hold
    // the connection, and its socket, for ever: the device is closed without a CONNACK and
    // retries (a CONNACK "server unavailable" would stop mqtt.js: see upstream-link.ts).
    this.connectTimer = setTimeout(() => {
      if (this.state !== 'authenticating') return;
      this.ctx.emit('error', new Error(`gateway: authenticating ${JSON.stringify(printable(packet.clientId))} took over ${this.ctx.authTimeoutMs} ms`));
      this.refuse('unavailable');
    }, this.ctx.authTimeoutMs);
    this.connectTimer.unref();
    Promise.resolve()
      .then(() => this.ctx.directory.authenticate(creds))
      .then(
        (result) => {
          if (this.state !== 'authenticating') return;
          clearTimeout(this.connectTimer);
          if (!result.ok) return this.refuse(result.reason);
          this.open(packet, result.device);
        },
        (err: Error) => {
          this.ctx.emit('error', err);
          if (this.state !== 'authenticating') return;
          clearTimeout(this.connectTimer);
          this.refuse('unavailable');
        },
      );
  }

  /**
   * Refused with the CONNACK code MQTT defines; "unavailable" with none at all (see
   * upstream-link.ts). The event never carries the username or password: a ThingsBoard username
   * is its token.
   */
  private refuse(reason: keyof typeof CONNACK_CODES | 'unavailable', detail?: { deviceId: string; message: string }): void {
    this.ctx.counters.refused++;
    this.ctx.emit('refused', { clientId: this.clientId, reason, remote: this.remote, ...detail });
    if (reason !== 'unavailable') {
      const code = CONNACK_CODES[reason];
      this.toDevice(
        this.version === 5
          ? { cmd: 'connack', sessionPresent: false, reasonCode: code.v5 }
          : { cmd: 'connack', sessionPresent: false, returnCode: code.v4 },
      );
    }
    this.close(`refused: ${reason}`);
  }

  private open(connect: mqtt.IConnectPacket, device: DeviceIdentity): void {
    let policy: TopicPolicy;
    try {
      policy = this.ctx.policyFor(device);
    } catch (err) {
      // An ACL rule would need a value the device lacks: never widen it, refuse the device.
      if (!(err instanceof IncompleteIdentityError)) throw err;
      return this.refuse('not_authorized', { deviceId: device.deviceId, message: err.message });
    }
    this.device = device;
    this.reader.setLimit(this.ctx.limits.maxPacketBytes);
    const widen = this.ctx.widenThingsboard && device.dialect === 'thingsboard' && policy instanceof NamespacePolicy;
    this.state = 'linking';
    this.link = new UpstreamLink(
      this.ctx,
      {
        linking: () => this.state === 'linking',
        fromUpstream: (packet) => this.fromUpstream(packet),
        write: (socket, packet, version) => this.write(socket, packet, version, 'broker'),
        connacked: (out, code) => this.finishConnack(out, code),
        denyWill: (topic) => (this.relay as PacketRelay).deny('publish', topic),
        unavailable: (why) => this.ctx.brokerUnavailable(this, why),
        close: (reason) => this.close(reason),
      },
      { deviceSocket: this.socket, deviceVersion: this.version, connect, device, policy },
    );
    this.relay = new PacketRelay(
      this.ctx,
      {
        isOpen: () => this.state === 'open',
        toDevice: (packet) => this.toDevice(packet),
        write: (socket, packet, version) => this.write(socket, packet, version, 'broker'),
        disconnect: (reasonCode, reason) => this.disconnect(reasonCode, reason),
        close: (reason) => this.close(reason),
        subscribed: (filters) => this.ctx.sessionSubscribed(this, filters),
      },
      this.link,
      {
        device,
        version: this.version,
        policy,
        widen,
        deviceMaxPacket: this.version === 5 ? connect.properties?.maximumPacketSize : undefined,
      },
    );
    this.link.open();
  }

  private fromUpstream(packet: mqtt.Packet): void {
    if (this.state === 'closed') return;
    if (packet.cmd === 'connack') return (this.link as UpstreamLink).connack(packet);
    (this.relay as PacketRelay).fromBroker(packet);
  }

  /** Passes the CONNACK (in the device's version) down; opens the session or ends it. */
  private finishConnack(out: mqtt.IConnackPacket, code: number): void {
    this.connackSent = true;
    this.toDevice(out);
    if (code) {
      this.close(`broker refused the connection (${code})`);
      return;
    }
    this.state = 'open';
    this.ctx.counters.accepted++;
    this.announced = true;
    this.ctx.sessionOpened(this);
    const queued = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const packet of queued) this.fromDevice(packet);
  }

  // ---- plumbing ---------------------------------------------------------------------------

  private toDevice(packet: mqtt.Packet): void {
    // One gate for every code a device hears, whoever made it (broker, bridge, our refusals).
    const { packet: valid, invalid } = withValidReasonCodes(packet, this.version);
    if (invalid.length) {
      this.ctx.counters.errors++;
      if (!this.reportedBadCode) this.ctx.emit('error', new Error(`gateway: ${packet.cmd.toUpperCase()} for ${this.device?.deviceId ?? this.remote} carried reason code(s) ${invalid.map((c) => '0x' + c.toString(16)).join(', ')}, not valid in MQTT ${this.version === 5 ? '5' : '3.1.1'}: sent the generic failure instead`));
      this.reportedBadCode = true;
    }
    this.write(this.socket, valid, this.version, 'device');
  }

  private write(socket: net.Socket, packet: mqtt.Packet, version: Version, side: string): void {
    if (socket.destroyed || socket.writableEnded) return;
    let bytes: Buffer[];
    try {
      bytes = encode(packet, version);
    } catch (err) {
      this.ctx.counters.errors++;
      this.ctx.emit('error', new Error(`cannot encode ${packet.cmd} for the ${side} of ${this.device?.deviceId ?? this.remote}: ${(err as Error).message}`));
      this.close('encoding error');
      return;
    }
    if (bytes.length === 1) {
      socket.write(bytes[0]);
      return;
    }
    // A chunk's header and payload leave together (a no-op inside the turn's own cork).
    socket.cork();
    for (const piece of bytes) socket.write(piece);
    socket.uncork();
  }

  private malformed(message: string): void {
    if (this.state === 'closed') return;
    this.ctx.counters.malformed++;
    this.ctx.emit('malformed', { deviceId: this.device?.deviceId, remote: this.remote, message: printable(message) });
    this.close(`malformed packet: ${printable(message)}`);
  }

  /** A packet over the limit (or a header that cannot be one): closed before it is buffered. */
  private tooLarge(err: Error): void {
    if (this.state === 'closed') return;
    if (!(err instanceof PacketTooLarge)) return this.malformed(err.message);
    this.ctx.counters.tooLarge++;
    this.ctx.emit('malformed', { deviceId: this.device?.deviceId, remote: this.remote, message: err.message });
    // Before authentication the device has been told nothing: it is simply closed.
    if (this.connackSent) this.disconnect(PACKET_TOO_LARGE_V5, err.message);
    else this.close(err.message);
  }

  /** MQTT 5 devices hear why (DISCONNECT with a reason code); 3.1.1 has no way to say it. */
  private disconnect(reasonCode: number, reason: string): void {
    if (this.state === 'closed') return;
    if (this.version === 5 && this.connackSent) this.toDevice({ cmd: 'disconnect', reasonCode });
    this.close(reason);
  }

  /** Ends both legs with end(), so a final CONNACK or DISCONNECT still goes out. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    const wasOpen = this.announced;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    this.link?.stop();
    this.reader.stop();
    this.queue = [];
    this.parser.removeAllListeners('packet');
    for (const socket of [this.socket, this.link?.socket]) {
      if (!socket || socket.destroyed) continue;
      socket.end();
      // A peer that never closes its side must not keep the socket (or a redeploy) alive.
      setTimeout(() => socket.destroy(), this.ctx.closeGraceMs).unref();
    }
    this.ctx.sessionClosed(this, wasOpen, reason);
  }
}
