import { DialectName, ProgressEvent, isDialectName } from '../core/types';
import { detectDialect, dialectFor } from '../core/device-updates/detect-dialect';
import { EventContext, NormalisedEvent, explainError, toProgressEvent } from '../core/device-updates/progress-events';
import type { DeviceState, RolloutSummary } from '../core/device-updates/device-states';
import { EventSource, policyFromSettings, trackerFor } from '../core/device-updates/tracker';
import { NodeAPI, Node, NodeDef, NodeMessage } from './red';
import { useRepository } from './repository-node';
import { reportUnregistered } from './unregistered-report';

// progress-parser: device uplinks (any dialect), chunk-server progress and download events in;
// normalised progress events (output 1) and rollout summaries (output 2) out. The rollout itself
// (records, timeouts, retries) lives in the repository's tracker, src/core/device-updates/tracker.ts.

interface ProgressParserDef extends NodeDef {
  repository?: string;
  /** 'auto' (from the topic) or a dialect name. */
  dialect?: string;
  /** Seconds without progress before timed_out; 0 disables. */
  timeout?: string | number;
  retries?: string | number;
  /** Seconds before the first retry; doubles for each further one. */
  backoff?: string | number;
}

/** A payload that already is a progress event (chunk-server's second output, a user's flow). */
function isEventLike(value: unknown): boolean {
  if (!value || typeof value !== 'object' || Buffer.isBuffer(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.device === 'string' && (v.state !== undefined || v.version !== undefined);
}

export = function (RED: NodeAPI) {
  function ProgressParser(this: Node, config: ProgressParserDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const repoNode = useRepository(RED, node, config.repository);
    if (!repoNode) return;
    const repo = repoNode.repo;
    const tracker = trackerFor(repo);
    const fixed: DialectName | undefined = isDialectName(config.dialect) ? config.dialect : undefined;
    const ctx: EventContext = {
      dialectOf: (id) => repo.devices.get(id)?.dialect ?? repo.rollout.get(id)?.dialect ?? fixed,
      stateOf: (id) => repo.rollout.get(id)?.state,
      now: () => repo.now(),
    };
    tracker.setPolicy(node.id, policyFromSettings(config));

    let lastStatus = '';
    const showStatus = (s: RolloutSummary) => {
      const active = s.notified + s.downloading + s.downloaded + s.verified + s.updating;
      const failed = s.failed + s.timed_out;
      const text = RED._('progress-parser.status.counts', { active, done: s.updated, failed });
      const key = `${text}/${failed}`;
      if (key === lastStatus) return;
      lastStatus = key;
      node.status({ fill: failed ? 'red' : active ? 'blue' : 'green', shape: 'dot', text });
    };
    showStatus(tracker.summary());

    const eventMsg = (event: NormalisedEvent, record: DeviceState): NodeMessage => ({ topic: event.device, payload: event, record: { ...record } });

    // Progress this node did not parse itself: downloads, timeouts, retries, admin assignments.
    const onProgress = (event: NormalisedEvent, record: DeviceState, source: EventSource) => {
      if (source !== 'uplink') node.send([eventMsg(event, record), null]);
    };
    const onSummary = (summary: RolloutSummary) => {
      showStatus(summary);
      node.send([null, { topic: 'summary', payload: summary }]);
    };
    tracker.on('progress', onProgress);
    tracker.on('summary', onSummary);
    const unregistered = reportUnregistered(node);

    /** The events a message carries; an Error for input that is not progress in any form. */
    function eventsOf(msg: NodeMessage): ProgressEvent[] | Error {
      const p = msg.payload;
      const topic = typeof msg.topic === 'string' ? msg.topic : '';
      // What a device published is read by its dialect, whatever it looks like: taken as a ready
      // event, `{"device":"tb-2","state":"updated"}` on tb-1's telemetry topic would let one
      // device speak for another. Ready events come from flows: chunk-server's second output
      // (topic `progress`), a function node (no topic, or one no dialect reads).
      const fromDevice = detectDialect(topic) !== undefined || (fixed !== undefined && topic !== '' && topic !== 'progress');
      if (!fromDevice && (isEventLike(p) || (Array.isArray(p) && p.length > 0 && p.every(isEventLike)))) {
        const events: ProgressEvent[] = [];
        for (const item of Array.isArray(p) ? p : [p]) {
          const ev = toProgressEvent(item, ctx);
          if (typeof ev === 'string') return new Error(`progress-parser: ${ev}`);
          events.push(ev);
        }
        return events;
      }
      const name = fixed ?? detectDialect(topic);
      if (!name) return new Error(RED._('progress-parser.errors.unknownDialect', { topic: topic || '(none)' }));
      const dialect = dialectFor(name);
      if (!dialect) return new Error(RED._('progress-parser.errors.noDialectModule', { dialect: name }));
      const payload = Buffer.isBuffer(p) || typeof p === 'string' ? p : JSON.stringify(p ?? '');
      const uplink = dialect.parseUplink(topic, payload);
      if (uplink.kind === 'invalid') return new Error(`progress-parser: ${name} uplink on ${topic}: ${uplink.error}`);
      if (uplink.kind !== 'progress') return []; // chunk and attribute requests: chunk-server's part
      const device = typeof msg.device === 'string' ? msg.device : undefined;
      return uplink.events.map((ev) => ({
        ...ev,
        device: ev.device || device || '',
        ...(ev.error ? { error: explainError(ev.dialect, ev.error) } : {}),
      }));
    }

    node.on('input', (msg, send, done) => {
      let events: ProgressEvent[] | Error;
      try {
        events = eventsOf(msg);
      } catch (err) {
        // Parsing never throws by contract; if a dialect does, it is a bug, not the device's fault.
        events = err instanceof Error ? err : new Error(String(err));
      }
      if (events instanceof Error) {
        done(events);
        return;
      }
      const out: NodeMessage[] = [];
      for (const ev of events) {
        if (!ev.device) continue;
        if (!tracker.tracks(ev.device)) {
          unregistered.add(ev.device);
          continue;
        }
        const result = tracker.record(ev, 'uplink');
        if (result) out.push(eventMsg(result.event, result.record));
      }
      if (out.length) send([out, null]);
      done();
    });

    node.on('close', (_removed, done) => {
      tracker.off('progress', onProgress);
      tracker.off('summary', onSummary);
      tracker.removePolicy(node.id);
      unregistered.close();
      done();
    });
  }

  RED.nodes.registerType('progress-parser', ProgressParser);
};
