import * as net from 'net';
import * as mqtt from 'mqtt-packet';
import type { DeviceIdentity } from './directory';
import { generatedClientId, upstreamClientId } from './identity';
import type { TopicPolicy } from './policy';
import * as bridge from './protocol-bridge';
import type { GatewayContext } from './gateway';

// One device's connection to the broker, from its CONNECT to the broker's CONNACK: connecting,
// retrying while the broker is down, probing whether it speaks MQTT 5, and translating the
// CONNECT up and the CONNACK down. Once the CONNACK is through, the relay (relay.ts) writes to
// `socket` in `version` for the rest of the connection.

type Version = bridge.Version;

/** Broker CONNACK codes that mean "not now": the CONNECT is tried again, not passed down. */
const BROKER_UNAVAILABLE = { v4: [3], v5: [0x88, 0x89] };

/** What the link needs from its device session: the one interface between the two. */
export interface LinkSession {
  /** True while the session waits for the broker's CONNACK (its state 'linking'). */
  linking(): boolean;
  /** Every packet from the current broker connection, the CONNACK included. */
  fromUpstream(packet: mqtt.Packet): void;
  /** Encodes `packet` in `version` and writes it to the broker connection. */
  write(socket: net.Socket, packet: mqtt.Packet, version: Version): void;
  /** The broker answered: `out` is its CONNACK in the device's version, `code` the broker's. */
  connacked(out: mqtt.IConnackPacket, code: number): void;
  /** The device's will topic is outside its ACL: the will is dropped. */
  denyWill(topic: string): void;
  /** The broker stayed unreachable for upstreamRetryMs; close() follows. */
  unavailable(why: string): void;
  close(reason: string): void;
}

export interface LinkRequest {
  deviceSocket: net.Socket;
  deviceVersion: Version;
  connect: mqtt.IConnectPacket;
  device: DeviceIdentity;
  policy: TopicPolicy;
}

export class UpstreamLink {
  /** The current broker connection (a new one on every attempt), undefined between attempts. */
  socket?: net.Socket;
  /** The broker side's own version: 3.1.1 for an MQTT 5 device when the broker lacks 5 (protocol-bridge.ts). */
  version: Version;
  /** This device's MQTT 5 CONNECT is how a gateway in `auto` learns whether the broker speaks 5. */
  private readonly probing: boolean;
  /** The MQTT 5 CONNECT went up and the broker closed without CONNACK: this is the 3.1.1 retry. */
  private retriedAfterClose = false;
  private sessionExpiry?: number;
  private readonly deadline: number;
  private attempts = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly session: LinkSession,
    private readonly request: LinkRequest,
  ) {
    this.version = ctx.protocol.upstreamVersion(request.deviceVersion);
    this.probing = request.deviceVersion === 5 && this.version === 5 && ctx.protocol.probing;
    this.deadline = Date.now() + ctx.limits.upstreamRetryMs;
  }

  /** An MQTT 5 device behind a 3.1.1 broker: its packets go through protocol-bridge.ts. */
  get bridged(): boolean {
    return this.request.deviceVersion === 5 && this.version !== 5;
  }

  /**
   * Opens the broker connection and sends the device's CONNECT; while the broker cannot be
   * reached (refused, reset, or CONNACK "server unavailable"/"busy") it tries again until
   * upstreamRetryMs, then closes the device without a CONNACK. Why not CONNACK 3: mqtt.js 5.16
   * stops reconnecting on any refusing CONNACK unless the client opted into
   * `reconnectOnConnackError` (src/lib/handlers/connack.ts, `handleConnack`: `reconnectSuppressed
   * = true`, then `_setupReconnect()` only under that option), and our simulator (ota-sim) uses
   * mqtt.js's default. A connection closed before any CONNACK is, to every client, a network
   * failure: mqtt.js reconnects after reconnectPeriod ('close' -> `_setupReconnect`), paho's
   * loop_forever reconnects on a lost connection, and the embedded C clients (Paho
   * MQTTClient-C, esp-mqtt) see MQTTConnect fail or the transport drop and run their retry loop.
   * The device's packets wait in the session's queue meanwhile: while probing, the same CONNECT
   * may have to go up again as 3.1.1 (protocol-bridge.ts), which the device never notices.
   */
  open(): void {
    const session = this.session;
    const device = this.request.deviceSocket;
    const up = this.ctx.connectUpstream();
    this.socket = up;
    let connected = false;
    up.once('connect', () => (connected = true));
    up.once('secureConnect', () => (connected = true));
    const parser = mqtt.parser({ protocolVersion: this.version });
    parser.on('packet', (packet) => {
      if (up === this.socket) session.fromUpstream(packet);
    });
    parser.on('error', (err: Error) => session.close(`broker sent a malformed packet: ${err.message}`));
    up.on('data', (data) => {
      device.cork();
      try {
        parser.parse(data);
      } catch (err) {
        session.close(`broker sent a malformed packet: ${(err as Error).message}`);
      }
      device.uncork();
      if (device.writableNeedDrain) {
        up.pause();
        device.once('drain', () => up.resume());
      }
    });
    up.on('error', (err) => {
      if (up !== this.socket) return;
      if (session.linking()) this.retry(err.message);
      else session.close(`broker connection: ${err.message}`);
    });
    up.on('close', () => {
      if (up !== this.socket) return;
      // Closed without CONNACK while probing MQTT 5 (a broker that does not parse 5 at all): once more as 3.1.1.
      if (session.linking() && connected && this.probing && this.version === 5) {
        this.retriedAfterClose = true;
        return this.retryAs(4);
      }
      if (session.linking()) this.retry('closed');
      else session.close('broker closed the connection');
    });
    // A broker that takes the connection and never answers it is as good as down.
    this.timer = setTimeout(() => {
      if (up === this.socket && session.linking()) this.retry('no CONNACK');
    }, Math.max(1000, this.deadline - Date.now()));
    let out = this.connectPacket();
    if (this.bridged) {
      const up4 = bridge.connectUp(out);
      this.ctx.protocol.dropped(up4.dropped);
      this.sessionExpiry = up4.sessionExpiry;
      out = up4.packet;
      this.ctx.protocol.counters.bridged++;
    }
    session.write(up, out, this.version);
  }

  /** The broker's CONNACK: retried, probed again as 3.1.1, or passed down in the device's version. */
  connack(packet: mqtt.IConnackPacket): void {
    if (!this.session.linking()) return this.session.close('broker sent a second CONNACK');
    clearTimeout(this.timer);
    const code = (this.version === 5 ? packet.reasonCode : packet.returnCode) ?? 0;
    const deviceVersion = this.request.deviceVersion;
    if (deviceVersion === 5 && this.version === 5) {
      this.ctx.protocol.answeredV5(code);
      // A 3.1.1 broker's "unacceptable protocol version" read as MQTT 5: 1 is no MQTT 5 code.
      if (code === bridge.UNACCEPTABLE_PROTOCOL_VERSION) {
        // auto just learned the broker lacks 5: the same CONNECT again, as 3.1.1.
        if (this.probing && this.ctx.protocol.upstreamVersion(5) === 4) return this.retryAs(4);
        return this.session.connacked({ cmd: 'connack', sessionPresent: false, reasonCode: bridge.connackCodeV4toV5(code) }, code);
      }
    } else if (code === bridge.UNACCEPTABLE_PROTOCOL_VERSION) {
      this.ctx.protocol.refusedV4();
    } else if (this.retriedAfterClose) {
      this.ctx.protocol.closedV5ThenAnswered();
    }
    if ((this.version === 5 ? BROKER_UNAVAILABLE.v5 : BROKER_UNAVAILABLE.v4).includes(code)) return this.retry(`CONNACK ${code}`);
    const out: mqtt.IConnackPacket = this.bridged ? bridge.connackDown(packet, this.sessionExpiry) : { ...packet };
    if (deviceVersion === 5) {
      const props = { ...out.properties };
      // Our own topic alias maximum (the broker's is for our upstream leg, which uses none);
      // receiveMaximum passes through as is.
      delete props.topicAliasMaximum;
      if (this.ctx.limits.topicAliasMaximum > 0) props.topicAliasMaximum = this.ctx.limits.topicAliasMaximum;
      // Ours, or the broker's less our prefix (it lengthens every topic on the way up).
      const overhead = this.request.policy.overhead;
      const broker = props.maximumPacketSize ? Math.max(1, props.maximumPacketSize - overhead) : Infinity;
      props.maximumPacketSize = Math.min(this.ctx.limits.maxPacketBytes, broker);
      out.properties = props;
    }
    this.session.connacked(out, code);
  }

  /** No further attempt (the session is closing). */
  stop(): void {
    clearTimeout(this.timer);
  }

  /** The same CONNECT at once in another version (the broker just showed it lacks MQTT 5). */
  private retryAs(version: Version): void {
    clearTimeout(this.timer);
    const up = this.socket;
    this.socket = undefined;
    up?.destroy();
    this.version = version;
    this.open();
  }

  private retry(why: string): void {
    clearTimeout(this.timer);
    const up = this.socket;
    this.socket = undefined;
    up?.destroy();
    if (!this.session.linking()) return;
    const wait = Math.min(1000, 100 * 2 ** this.attempts++);
    if (Date.now() + wait > this.deadline) {
      this.session.unavailable(why);
      this.session.close(`broker unavailable (${why}) for ${this.ctx.limits.upstreamRetryMs} ms: closed without CONNACK so that the device reconnects`);
      return;
    }
    this.timer = setTimeout(() => this.open(), wait);
  }

  /** The device's CONNECT as the broker must see it: our client id, credentials and topics. */
  private connectPacket(): mqtt.IConnectPacket {
    const { connect, device, policy } = this.request;
    // Prefixed per device so that no device can take over another device's session.
    const clientId = upstreamClientId(device.deviceId, connect.clientId || generatedClientId());
    const out: mqtt.IConnectPacket = { ...connect, clientId };
    delete out.username;
    delete out.password;
    if (this.ctx.upstream.username) {
      out.username = this.ctx.upstream.username;
      if (this.ctx.upstream.password !== undefined) out.password = Buffer.from(this.ctx.upstream.password);
    }
    if (connect.properties) {
      const props = { ...connect.properties };
      // No topic aliases from the broker: the device's topics are rewritten per message.
      delete props.topicAliasMaximum;
      // The broker sends prefixed topics, which the device never sees: leave room for them.
      if (props.maximumPacketSize) props.maximumPacketSize += policy.overhead;
      out.properties = props;
    }
    if (connect.will) {
      const topic = policy.publish(connect.will.topic);
      if (topic === null) {
        this.session.denyWill(connect.will.topic);
        delete out.will;
      } else {
        out.will = { ...connect.will, topic };
        if (connect.will.properties?.responseTopic) {
          out.will.properties = { ...connect.will.properties, responseTopic: policy.publish(connect.will.properties.responseTopic) ?? undefined };
        }
      }
    }
    return out;
  }
}
