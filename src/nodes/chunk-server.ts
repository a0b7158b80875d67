import { ErrorThrottle } from '../core/error-throttle';
import { DialectName, MqttOut, OtaError, ProgressEvent } from '../core/types';
import { DEFAULT_CACHE_BYTES, deliveryFor } from '../core/chunking';
import { ChunkResult, ChunkService } from '../core/dialects/chunk-service';
import { optionsFromSettings, DeliverySettings } from '../core/dialects/options';
import { NodeAPI, Node, NodeDef, NodeMessage, DoneFn, MqttBrokerNode } from './red';
import { useRepository } from './repository-node';
import { SHARE_GROUP, linkToBroker } from './broker-link';
import { reportUnregistered } from './unregistered-report';

// chunk-server: ThingsBoard and Tago chunk requests in (from mqtt in), chunks out (to mqtt out) on
// the first output, progress derived from the requests on the second. Images come from a cache
// bounded in bytes, shared by every node of the repository.
//
// With a broker chosen the node also subscribes to the request topics itself and publishes each
// chunk on that same connection: no message passes between nodes, which is what a device waiting
// on one chunk at a time feels (Node-RED's two asynchronous hops add about 15 % to the round
// trip on loopback; see the README's Performance section).

interface ChunkServerDef extends NodeDef, DeliverySettings {
  repository?: string;
  dialect?: string;
  cacheMB?: string | number;
  broker?: string;
  /** Replying directly: subscribe as `$share/{group}/...` so several Node-REDs split the requests. */
  shareGroup?: string;
}

export = function (RED: NodeAPI) {
  function ChunkServer(this: Node, config: ChunkServerDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    let service: ChunkService;
    const repoNode = useRepository(RED, node, config.repository);
    if (!repoNode) return;
    const repo = repoNode.repo;
    const delivery = deliveryFor(repo, (r) => repo.firmware.read(r));
    try {
      const dialects: DialectName[] = config.dialect === 'thingsboard' || config.dialect === 'tago' ? [config.dialect] : ['thingsboard', 'tago'];
      service = new ChunkService(repo, delivery, { dialects, options: optionsFromSettings(config) });
      const mb = Number(config.cacheMB);
      // The cache is shared: the largest bound any chunk-server asks for wins.
      const bytes = Number.isFinite(mb) && mb > 0 ? Math.round(mb * 1048576) : DEFAULT_CACHE_BYTES;
      delivery.cache.maxBytes = delivery.cacheBoundSet ? Math.max(bytes, delivery.cache.maxBytes) : bytes;
      delivery.cacheBoundSet = true;
    } catch (err) {
      node.status({ fill: 'red', shape: 'ring', text: RED._('chunk-server.status.badConfig') });
      node.error((err as Error).message);
      return;
    }

    const throttle = new ErrorThrottle();
    const unregistered = reportUnregistered(node);
    let served = 0;
    let lastStatus = 0;
    let statusTimer: NodeJS.Timeout | undefined;

    // A status per chunk would flood the editor: at most one a second, and one after the last
    // chunk of a burst so that the count shown is the final one.
    function showServed(): void {
      if (statusTimer) return; // an update is already due
      const wait = lastStatus + 1000 - Date.now();
      if (wait > 0) {
        statusTimer = setTimeout(() => {
          statusTimer = undefined;
          lastStatus = 0;
          showServed();
        }, wait);
        return;
      }
      lastStatus = Date.now();
      node.status({ fill: 'green', shape: 'dot', text: RED._('chunk-server.status.served', { count: served }) });
    }
    node.on('close', (_removed, done) => {
      clearTimeout(statusTimer);
      unregistered.close();
      done();
    });
    node.status({ fill: 'grey', shape: 'ring', text: RED._('chunk-server.status.idle') });

    // One outcome, two ways out: `deliver` is the output wire or the broker connection.
    function finish(result: ChunkResult, deliver: (replies: MqttOut[], progress?: ProgressEvent) => void, done: DoneFn): void {
      if (!result.handled) {
        done();
        return;
      }
      if (result.replies.length || result.progress) deliver(result.replies, result.progress);
      if (result.error?.code === 'unknown_device' && result.device) {
        // The device got its error reply; the log gets a count once a minute, not a line per id.
        unregistered.add(result.device);
        done();
        return;
      }
      if (result.error) {
        node.status({ fill: 'red', shape: 'dot', text: result.error.code });
        // The device got its error reply; the log and Catch nodes get one per device per window.
        const { report, held } = throttle.admit(result.device ?? '', Date.now());
        if (!report) done();
        else if (held) done(new OtaError(result.error.code, `${result.error.message} (${held} more from this device held back in the last ${throttle.windowMs / 1000} s)`, result.error.field));
        else done(result.error);
        return;
      }
      served += 1;
      showServed();
      done();
    }

    function answer(topic: string, payload: unknown, device: string | undefined, deliver: (replies: MqttOut[], progress?: ProgressEvent) => void, done: DoneFn): void {
      let result: ChunkResult | Promise<ChunkResult>;
      try {
        result = service.handle(topic, payload, device);
      } catch (err) {
        done(err as Error);
        return;
      }
      if (result instanceof Promise) result.then((r) => finish(r, deliver, done), (err: Error) => done(err));
      else finish(result, deliver, done);
    }

    const progressMsg = (progress: ProgressEvent | undefined): NodeMessage | null => (progress ? { topic: 'progress', payload: progress } : null);

    node.on('input', (msg, send, done) => {
      if (typeof msg.topic !== 'string') {
        done(new OtaError('bad_request', 'msg.topic must be the MQTT topic of the request (wire this node from mqtt in)'));
        return;
      }
      const device = typeof msg.device === 'string' && msg.device ? msg.device : undefined;
      answer(msg.topic, msg.payload, device, (replies, progress) => {
        const reply: NodeMessage | NodeMessage[] | null = replies.length === 1 ? { ...replies[0] } : replies.length ? replies.map((r) => ({ ...r })) : null;
        send([reply, progressMsg(progress)]);
      }, done);
    });

    const brokerId = typeof config.broker === 'string' ? config.broker : '';
    const broker = brokerId ? (RED.nodes.getNode(brokerId) as MqttBrokerNode | null) : null;
    const share = (config.shareGroup ?? '').trim() || undefined;
    if (share && !SHARE_GROUP.test(share)) {
      // Never subscribe to something else than asked: no subscription, and a clear error.
      node.status({ fill: 'red', shape: 'ring', text: RED._('chunk-server.status.badShareGroup') });
      node.error(RED._('chunk-server.errors.badShareGroup', { group: share }));
    } else if (broker && typeof broker.register === 'function') {
      const link = linkToBroker(RED, node, broker, service.filters(), (topic, payload) => {
        answer(topic, payload, undefined, (replies, progress) => {
          for (const r of replies) link.publish(r.topic, r.payload, r.qos, r.retain);
          // mqtt.js writes the chunk when this tick ends (it corks the socket until then): the
          // progress message, which costs a pass through Node-RED's send, can wait until after.
          if (progress) queueMicrotask(() => node.send([null, progressMsg(progress)]));
        }, (err) => {
          if (err) node.error(err, { topic, payload });
        });
      }, share);
      node.on('close', (removed, done) => link.close(removed, done));
    } else if (brokerId) {
      node.status({ fill: 'red', shape: 'ring', text: RED._('chunk-server.status.noBroker') });
      node.error(RED._('chunk-server.errors.noBroker'));
    }
  }

  RED.nodes.registerType('chunk-server', ChunkServer);
};
