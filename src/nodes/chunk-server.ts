import { ErrorThrottle } from '../core/error-throttle';
import { DialectName, OtaError } from '../core/types';
import { DEFAULT_CACHE_BYTES, deliveryFor } from '../core/chunking';
import { ChunkResult, ChunkService } from '../core/dialects/chunk-service';
import { optionsFromSettings, DeliverySettings } from '../core/dialects/options';
import { NodeAPI, Node, NodeDef, NodeMessage, SendFn, DoneFn } from './red';
import { useRepository } from './repository-node';

// chunk-server: ThingsBoard and Tago chunk requests in (from mqtt in), chunks out (to mqtt out) on
// the first output, progress derived from the requests on the second. Images come from a cache
// bounded in bytes, shared by every node of the repository.

interface ChunkServerDef extends NodeDef, DeliverySettings {
  repository?: string;
  dialect?: string;
  cacheMB?: string | number;
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
    let served = 0;
    let lastStatus = 0;
    node.status({ fill: 'grey', shape: 'ring', text: RED._('chunk-server.status.idle') });

    function finish(result: ChunkResult, send: SendFn, done: DoneFn): void {
      if (!result.handled) {
        done();
        return;
      }
      const reply: NodeMessage | NodeMessage[] | null = result.replies.length === 1 ? { ...result.replies[0] } : result.replies.length ? result.replies.map((r) => ({ ...r })) : null;
      const progress: NodeMessage | null = result.progress ? { topic: 'progress', payload: result.progress } : null;
      if (reply || progress) send([reply, progress]);
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
      // A status per chunk would flood the editor: at most one update a second.
      const now = Date.now();
      if (now - lastStatus >= 1000 || result.progress?.state === 'downloaded') {
        lastStatus = now;
        node.status({ fill: 'green', shape: 'dot', text: RED._('chunk-server.status.served', { count: served }) });
      }
      done();
    }

    node.on('input', (msg, send, done) => {
      if (typeof msg.topic !== 'string') {
        done(new OtaError('bad_request', 'msg.topic must be the MQTT topic of the request (wire this node from mqtt in)'));
        return;
      }
      let result: ChunkResult | Promise<ChunkResult>;
      try {
        result = service.handle(msg.topic, msg.payload, typeof msg.device === 'string' && msg.device ? msg.device : undefined);
      } catch (err) {
        done(err as Error);
        return;
      }
      if (result instanceof Promise) result.then((r) => finish(r, send, done), (err: Error) => done(err));
      else finish(result, send, done);
    });
  }

  RED.nodes.registerType('chunk-server', ChunkServer);
};
