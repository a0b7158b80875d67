import { DialectName, OtaError, isDialectName } from '../core/types';
import { deliveryFor } from '../core/chunking';
import { AssignResult, AssignService, NoticeMsg, OtaCommand } from '../core/dialects/assign-service';
import type { NoticeOutcome, ReportOutcomes } from '../core/device-updates/tracker';
import { optionsFromSettings, DeliverySettings } from '../core/dialects/options';
import type { DialectOptions } from '../core/dialects/dialect';
import { NodeAPI, Node, NodeDef, NodeMessage, SendFn } from './red';
import { useRepository } from './repository-node';
import { rolloutsFor } from '../core/rollouts/service';

// ota-assign: firmware + devices in, one notice per device out (ready for mqtt out). Also answers
// the uplinks that ask for an assignment (ThingsBoard attribute requests, Tencent version reports)
// and the repository's 'command' events (admin API, retry timer).

interface OtaAssignDef extends NodeDef, DeliverySettings {
  repository?: string;
  dialect?: string;
  tag?: string;
}

export = function (RED: NodeAPI) {
  function OtaAssign(this: Node, config: OtaAssignDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    let options: DialectOptions;
    try {
      options = optionsFromSettings(config);
    } catch (err) {
      node.status({ fill: 'red', shape: 'ring', text: RED._('ota-assign.status.badConfig') });
      node.error((err as Error).message);
      return;
    }
    const repoNode = useRepository(RED, node, config.repository);
    if (!repoNode) return;
    const repo = repoNode.repo;
    const dialect: DialectName | undefined = isDialectName(config.dialect) ? config.dialect : undefined;
    const service = new AssignService(repo, deliveryFor(repo, (r) => repo.firmware.read(r)), { dialect, options: () => options });
    const configTag = typeof config.tag === 'string' && config.tag.trim() ? config.tag.trim() : undefined;
    node.status({});

    function report(result: AssignResult, send: SendFn, verb: 'notified' | 'cleared' | 'answered'): Error | undefined {
      for (const w of result.warnings) node.warn(w);
      for (const out of result.outs) send(out as unknown as NodeMessage);
      // An uplink that needed no answer (a Tago block echoed back, a progress report) says nothing new.
      if (verb === 'answered' && result.outs.length === 0 && !result.errors.length) return undefined;
      // What matters is the rollout, not the last batch ("1 cleared" said nothing of the other 40).
      const s = repo.rollout.summary();
      const assigned = s.total - s.idle;
      // Notified: told, and not yet running the firmware; up to date: running it.
      const text = RED._('ota-assign.status.totals', { count: assigned, notified: assigned - s.assigned - s.updated })
        + (s.updated ? RED._('ota-assign.status.upToDate', { count: s.updated }) : '');
      if (result.errors.length) {
        node.status({ fill: 'red', shape: 'dot', text: RED._('ota-assign.status.errors', { count: result.errors.length }) });
        return new OtaError('assign_failed', result.errors.join('; '));
      }
      node.status({ fill: 'green', shape: 'dot', text });
      return undefined;
    }

    async function command(msg: NodeMessage): Promise<{ result: AssignResult; verb: 'notified' | 'cleared' | 'answered' }> {
      const action = msg.action === undefined ? 'assign' : msg.action;
      if (action !== 'assign' && action !== 'unassign' && action !== 'renotify') {
        throw new OtaError('bad_action', `unknown action "${String(action)}": use assign, unassign or renotify`, 'action');
      }
      // An uplink from mqtt in: a ThingsBoard attribute request, a Tencent version report.
      if (msg.firmware === undefined && msg.devices === undefined && msg.tag === undefined && msg.action === undefined && typeof msg.topic === 'string') {
        const answered = await service.uplink(msg.topic, msg.payload, typeof msg.device === 'string' ? msg.device : undefined);
        if (answered) return { result: answered, verb: 'answered' };
      }
      const errors: string[] = [];
      const tag = typeof msg.tag === 'string' && msg.tag.trim() ? msg.tag.trim() : configTag;
      if (action === 'assign') {
        const firmware = service.resolveFirmware(msg.firmware);
        const devices = await service.resolveDevices(msg.devices, tag, errors);
        const result = await service.assign(firmware, devices);
        // Seen in /ota/rollouts as a rollout of one group, like an assignment through the admin API.
        rolloutsFor(repo).recordAssignment(firmware, devices);
        result.errors.unshift(...errors);
        for (const out of result.outs) out.firmware = firmware;
        return { result, verb: 'notified' };
      }
      const devices = await service.resolveDevices(msg.devices, tag, errors);
      const result = action === 'unassign' ? service.unassign(devices) : await service.renotify(devices);
      result.errors.unshift(...errors);
      return { result, verb: action === 'unassign' ? 'cleared' : 'notified' };
    }

    node.on('input', (msg, send, done) => {
      command(msg).then(
        ({ result, verb }) => {
          const err = report(result, send, verb);
          if (err) done(err);
          else done();
        },
        (err: Error) => {
          node.status({ fill: 'red', shape: 'dot', text: err instanceof OtaError ? err.code : 'error' });
          done(err);
        },
      );
    });

    // Commands from the admin API and the retry timer, for the devices of our dialect(s).
    const onCommand = (cmd: OtaCommand, reportOutcomes?: ReportOutcomes) => {
      const devices = (Array.isArray(cmd?.devices) ? cmd.devices : [])
        .map((id) => repo.devices.get(id))
        .filter((d): d is NonNullable<typeof d> => !!d && service.handles(d.dialect));
      if (!devices.length) return;
      const run = async (): Promise<AssignResult> => {
        // The tracker recorded assignment and attempt already: send (or clear) notices only.
        if (cmd.action === 'assign' || cmd.action === 'renotify') {
          const firmware = cmd.firmware ? service.resolveFirmware(cmd.firmware) : undefined;
          if (cmd.action === 'assign' && !firmware) throw new OtaError('bad_command', 'assign command without firmware');
          return service.renotify(devices, undefined, false, firmware);
        }
        if (cmd.action === 'unassign') return service.unassign(devices, cmd.firmware);
        if (cmd.action === 'clear') return service.clear(devices, cmd.firmware);
        throw new OtaError('bad_command', `unknown command ${String(cmd.action)}`);
      };
      const outcome = run().then(
        (result): NoticeOutcome[] => {
          if (cmd.firmware && (cmd.action === 'assign' || cmd.action === 'renotify')) for (const out of result.outs) (out as NoticeMsg).firmware = cmd.firmware;
          const err = report(result, node.send.bind(node), cmd.action === 'unassign' || cmd.action === 'clear' ? 'cleared' : 'notified');
          if (err) node.error(err.message);
          return [...result.notified.map((device) => ({ device })), ...result.failed];
        },
        (err: Error): NoticeOutcome[] => {
          node.status({ fill: 'red', shape: 'dot', text: err instanceof OtaError ? err.code : 'error' });
          node.error(err.message);
          const error = { code: err instanceof OtaError ? err.code : 'notice_failed', message: err.message };
          return devices.map((d) => ({ device: d.id, error }));
        },
      );
      // The tracker records a notice that could not be built as a failure of that device.
      if (typeof reportOutcomes === 'function') reportOutcomes(outcome);
    };
    repo.on('command', onCommand);
    node.on('close', (_removed, done) => {
      repo.removeListener('command', onCommand);
      done();
    });
  }

  RED.nodes.registerType('ota-assign', OtaAssign);
};
