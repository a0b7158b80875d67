import { OtaError, FirmwareRecord } from '../core/types';
import type { Catalogue } from '../core/firmware/catalogue';
import { NodeAPI, Node, NodeDef, NodeMessage } from './red';
import { useRepository } from './repository-node';

// firmware-store: images in, catalogue records out. msg.action (or msg.topic) picks what to do:
// store (default), list, get, delete.

interface FirmwareStoreDef extends NodeDef {
  repository?: string;
  title?: string;
  version?: string;
  tag?: string;
  deviceType?: string;
}

const ACTIONS = ['store', 'list', 'get', 'delete'] as const;
type Action = (typeof ACTIONS)[number];

function actionOf(msg: NodeMessage): Action | undefined {
  const raw = typeof msg.action === 'string' ? msg.action : typeof msg.topic === 'string' && (ACTIONS as readonly string[]).includes(msg.topic) ? msg.topic : 'store';
  return (ACTIONS as readonly string[]).includes(raw) ? (raw as Action) : undefined;
}

type FirmwareRef = { id?: string; title?: string; version?: string };

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** msg.firmware (object or id), or a string payload, naming one firmware. */
function refOf(msg: NodeMessage): FirmwareRef | string {
  const f = msg.firmware;
  if (typeof f === 'string') return f;
  if (f && typeof f === 'object') {
    const o = f as Record<string, unknown>;
    return { id: str(o.id), title: str(o.title), version: str(o.version) };
  }
  if (typeof msg.payload === 'string') return msg.payload;
  throw new OtaError('bad_field', 'name the firmware: msg.firmware.id, or msg.firmware.title and version', 'firmware');
}

function resolve(catalogue: Catalogue, ref: FirmwareRef | string): FirmwareRecord {
  return catalogue.resolve(ref);
}

export = function (RED: NodeAPI) {
  function FirmwareStore(this: Node, config: FirmwareStoreDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const repoNode = useRepository(RED, node, config.repository);
    if (!repoNode) return;
    const repo = repoNode.repo;
    const showCount = () =>
      node.status({ fill: 'green', shape: 'dot', text: RED._('firmware-store.status.count', { count: repo.firmware.list().length }) });
    showCount();

    async function handle(msg: NodeMessage): Promise<NodeMessage> {
      const action = actionOf(msg);
      if (!action) throw new OtaError('bad_action', `unknown action "${String(msg.action)}": use store, list, get or delete`, 'action');
      switch (action) {
        case 'list':
          msg.payload = repo.firmware.list();
          return msg;
        case 'get': {
          const record = resolve(repo.firmware, refOf(msg));
          msg.payload = record;
          msg.firmware = record;
          return msg;
        }
        case 'delete': {
          const record = await repo.deleteFirmware(resolve(repo.firmware, refOf(msg)).id);
          msg.payload = record;
          msg.firmware = record;
          return msg;
        }
        case 'store': {
          const given = (msg.firmware && typeof msg.firmware === 'object' ? msg.firmware : {}) as Record<string, unknown>;
          const title = str(given.title);
          const version = str(given.version);
          const { record, created } = await repo.firmware.store({
            image: msg.payload as Buffer,
            title: title ?? str(config.title),
            version: version ?? str(config.version),
            tag: str(given.tag) ?? str(config.tag),
            deviceType: str(given.deviceType) ?? str(config.deviceType),
            source: title && version ? 'msg' : 'defaults',
          });
          msg.payload = record;
          msg.firmware = record;
          msg.created = created;
          return msg;
        }
      }
    }

    node.on('input', (msg, send, done) => {
      handle(msg).then(
        (out) => {
          if (actionOf(msg) === 'store' || actionOf(msg) === 'delete') showCount();
          send(out);
          done();
        },
        (err: Error) => {
          node.status({ fill: 'red', shape: 'dot', text: err instanceof OtaError ? err.code : 'error' });
          done(err);
        },
      );
    });
  }

  RED.nodes.registerType('firmware-store', FirmwareStore);
};
