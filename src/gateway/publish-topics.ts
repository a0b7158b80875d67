import type * as mqtt from 'mqtt-packet';
import type { TopicPolicy } from './policy';

// One device's PUBLISH topics both ways: rewritten by its TopicPolicy, with MQTT 5 topic aliases
// resolved on each leg (the broker's aliases never reach the device, the device's never the broker).

const PROTOCOL_ERROR_V5 = 0x82;
const TOPIC_ALIAS_INVALID_V5 = 0x94;

export type PublishUpOutcome =
  | { packet: mqtt.IPublishPacket }
  /** The ACL refused this topic (the alias already resolved). */
  | { denied: string }
  /** A topic alias MQTT 5 forbids: the device is disconnected with this reason code. */
  | { disconnect: number; why: string };

export class PublishTopics {
  private readonly aliasesUp = new Map<number, string>();
  private readonly aliasesDown = new Map<number, string>();

  constructor(
    private readonly policy: TopicPolicy,
    /** The Topic Alias Maximum the gateway tells the device in CONNACK. */
    private readonly aliasMaximum: number,
  ) {}

  /** The device's PUBLISH as the broker must see it. */
  up(packet: mqtt.IPublishPacket): PublishUpOutcome {
    const policy = this.policy;
    let topic = packet.topic;
    const alias = packet.properties?.topicAlias;
    // Aliases are resolved before rewriting (an alias-only PUBLISH rewritten blindly would land
    // on `{ns}/{id}/`), only up to the maximum told in CONNACK, and kept only for publishes the
    // ACL lets through: at most topicAliasMaximum topics of at most maxPacketBytes each.
    if (alias !== undefined) {
      if (alias < 1 || alias > this.aliasMaximum) {
        return { disconnect: TOPIC_ALIAS_INVALID_V5, why: `topic alias ${alias} above the maximum of ${this.aliasMaximum}` };
      }
      if (!topic) {
        const known = this.aliasesUp.get(alias);
        if (known === undefined) return { disconnect: PROTOCOL_ERROR_V5, why: `topic alias ${alias} was never set` };
        topic = known;
      }
    }
    const upTopic = policy.publish(topic);
    if (upTopic === null) return { denied: topic };
    if (alias !== undefined && packet.topic) this.aliasesUp.set(alias, topic);
    const out: mqtt.IPublishPacket = { ...packet, topic: upTopic };
    if (packet.properties) {
      const props = { ...packet.properties };
      delete props.topicAlias;
      if (props.responseTopic) props.responseTopic = policy.publish(props.responseTopic) ?? undefined;
      out.properties = props;
    }
    return { packet: out };
  }

  /** The broker's PUBLISH as the device must see it, or null when its topic is not the device's. */
  down(packet: mqtt.IPublishPacket): mqtt.IPublishPacket | null {
    const policy = this.policy;
    let topic = packet.topic;
    const alias = packet.properties?.topicAlias;
    if (alias !== undefined) {
      if (topic) this.aliasesDown.set(alias, topic);
      else topic = this.aliasesDown.get(alias) ?? '';
    }
    const deviceTopic = policy.down(topic);
    if (deviceTopic === null) return null;
    const out: mqtt.IPublishPacket = { ...packet, topic: deviceTopic };
    if (packet.properties) {
      const props = { ...packet.properties };
      delete props.topicAlias;
      if (props.responseTopic) props.responseTopic = policy.down(props.responseTopic) ?? props.responseTopic;
      out.properties = props;
    }
    return out;
  }
}
