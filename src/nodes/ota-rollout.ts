import { OtaError } from '../core/types';
import { rolloutEvents, rolloutsFor } from '../core/rollouts/service';
import { errorsOf } from '../core/rollouts/model';
import type { Rollout, RolloutEvent } from '../core/rollouts/model';
import { NodeAPI, Node, NodeDef, NodeMessage } from './red';
import { useRepository } from './repository-node';

// ota-rollout: msg.rollout (a plan, or a rollout id) and msg.action in; the repository's rollout
// events out (group started, threshold crossed, paused, finished, aborted, each with counts), so a
// flow can mail, page or ask for approval. The engine is src/core/rollouts/.

interface OtaRolloutDef extends NodeDef {
  repository?: string;
}

const ACTIONS = ['create', 'start', 'pause', 'resume', 'abort', 'retry', 'next', 'status'] as const;
type NodeAction = (typeof ACTIONS)[number];

const FILL: Record<Rollout['state'], 'grey' | 'blue' | 'yellow' | 'green' | 'red'> = {
  draft: 'grey', scheduled: 'grey', running: 'blue', paused: 'yellow', finished: 'green', aborted: 'red',
};

export = function (RED: NodeAPI) {
  function OtaRollout(this: Node, config: OtaRolloutDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const repoNode = useRepository(RED, node, config.repository);
    if (!repoNode) return;
    // The service of now: a Node-RED that takes the driver lease builds a new one (storage/driving.ts).
    const service = () => rolloutsFor(repoNode.repo);
    const events = rolloutEvents(repoNode.repo);
    /** The rollout the status shows: the last one this node created or acted on, or that moved. */
    let shown: string | undefined;

    function showStatus(): void {
      if (!shown) return node.status({});
      const r = service().engine.list().find((x) => x.id === shown);
      if (!r) return node.status({});
      const { total } = service().engine.counts(r.id);
      const wave = Math.max(1, r.groups.filter((g) => g.state !== 'pending').length);
      const percent = r.devices.length ? Math.round((total.succeeded * 100) / r.devices.length) : 0;
      const failed = errorsOf(total);
      const text = RED._('ota-rollout.status.line', { wave, waves: r.groups.length, percent }) +
        (failed ? RED._('ota-rollout.status.failed', { failed }) : '') +
        (r.state !== 'running' ? ` (${RED._(`ota-rollout.state.${r.state}`)})` : '');
      node.status({ fill: FILL[r.state], shape: r.state === 'running' ? 'dot' : 'ring', text });
    }

    // Assignments are rollouts of one group too (/ota/rollouts shows them); this node is about
    // staged ones: an assignment neither sends events here nor counts as the one open rollout.
    const staged = (r: { kind?: string }) => r.kind !== 'assignment';
    const onEvent = (event: RolloutEvent) => {
      if (!staged(event)) return;
      shown = event.rollout;
      const r = service().engine.list().find((x) => x.id === event.rollout);
      node.send({ topic: event.type, payload: { ...event, ...(event.group !== undefined ? { group: event.group + 1 } : {}) }, rollout: r ? service().view(r) : undefined });
      showStatus();
    };
    events.on('event', onEvent);
    // After a deploy or restart: the newest rollout still open.
    shown = service().engine.list().filter((r) => staged(r) && r.state !== 'finished' && r.state !== 'aborted').at(-1)?.id;
    showStatus();
    node.on('close', (_removed, done) => {
      events.off('event', onEvent);
      done();
    });

    /** The rollout an action is for: msg.rollout as an id or {id}, else the only one not over. */
    function target(value: unknown): string {
      if (typeof value === 'string' && value.trim()) return value.trim();
      if (value && typeof value === 'object' && typeof (value as { id?: unknown }).id === 'string') return (value as { id: string }).id;
      const open = service().engine.list().filter((r) => staged(r) && r.state !== 'finished' && r.state !== 'aborted');
      if (open.length === 1) return open[0].id;
      throw new OtaError('bad_field', open.length ? 'several rollouts are open: name one with msg.rollout (its id)' : 'no rollout is open: create one with msg.rollout (a plan)', 'rollout');
    }

    async function input(msg: NodeMessage): Promise<NodeMessage | undefined> {
      const plan = msg.rollout && typeof msg.rollout === 'object' && !Array.isArray(msg.rollout) && (msg.rollout as { id?: unknown }).id === undefined;
      const action = (msg.action ?? (plan ? 'create' : undefined)) as NodeAction | undefined;
      if (!action || !(ACTIONS as readonly string[]).includes(action)) {
        throw new OtaError('bad_action', `msg.action is one of ${ACTIONS.join(', ')} (create when msg.rollout is a plan)`, 'action');
      }
      if (action === 'create') {
        shown = (await service().create(msg.rollout)).id;
        return undefined;
      }
      const id = target(msg.rollout);
      shown = id;
      if (action === 'status') return { ...msg, topic: 'status', payload: service().view(service().engine.get(id)) };
      await service().act(id, action);
      return undefined;
    }

    node.on('input', (msg: NodeMessage, send, done) => {
      input(msg).then(
        (reply) => {
          if (reply) send(reply);
          showStatus();
          done();
        },
        (err: Error) => done(err),
      );
    });
  }
  RED.nodes.registerType('ota-rollout', OtaRollout);
};
