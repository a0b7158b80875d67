import { OtaError } from '../core/types';
import { rolloutsFor } from '../core/rollouts/service';
import type { Handler, HttpRequest, HttpResponse, Router } from './red';
import type { OtaRepositoryNode } from './repository-node';

// /ota/rollouts on the admin API (admin-api.ts registers these with its guards and error
// handling): create, list, get with counts per group, delete, and one POST per action.

export const ROLLOUT_PATHS = ['/ota/rollouts', '/ota/rollouts/:id', '/ota/rollouts/:id/:action'];

type Wrap = (fn: (req: HttpRequest, res: HttpResponse, repoNode: OtaRepositoryNode) => unknown, inPath?: boolean) => Handler;

interface Helpers {
  read: Handler;
  write: Handler;
  handle: Wrap;
  requireJson(req: HttpRequest): void;
  send(res: HttpResponse, status: number, body: unknown): void;
}

/** An action takes no body: anything in one is a mistake worth naming (a plan sent to /start, say). */
function noBody(body: unknown): void {
  if (body === undefined || body === null || Buffer.isBuffer(body)) return;
  if (typeof body !== 'object' || Array.isArray(body)) throw new OtaError('bad_body', 'an action takes no body', 'body');
  const [key] = Object.keys(body);
  if (key !== undefined) throw new OtaError('unknown_field', `unknown field ${JSON.stringify(key.slice(0, 64))}: an action takes no body`, key.slice(0, 64));
}

export function rolloutRoutes(router: Router, h: Helpers): void {
  const { read, write, handle, send } = h;
  router.get('/ota/rollouts', read, handle((_req, res, r) => send(res, 200, rolloutsFor(r.repo).list())));
  router.post('/ota/rollouts', write, handle(async (req, res, r) => {
    h.requireJson(req);
    const service = rolloutsFor(r.repo);
    const created = service.view(await service.create(req.body));
    // As for an assignment: say so when nothing will send the notices.
    const warning = r.repo.listenerCount('command') === 0 ? 'no ota-assign node is deployed for this repository: released devices stay assigned, and no notice is sent, until one is' : undefined;
    send(res, 201, warning ? { ...created, warning } : created);
  }));
  router.get('/ota/rollouts/:id', read, handle((req, res, r) => {
    const service = rolloutsFor(r.repo);
    send(res, 200, service.view(service.engine.get(req.params.id), req.query.devices === 'true'));
  }, true));
  router.delete('/ota/rollouts/:id', write, handle(async (req, res, r) => {
    const service = rolloutsFor(r.repo);
    const removed = service.view(service.engine.get(req.params.id));
    await service.remove(req.params.id);
    send(res, 200, removed);
  }, true));
  router.post('/ota/rollouts/:id/:action', write, handle(async (req, res, r) => {
    h.requireJson(req);
    noBody(req.body);
    const service = rolloutsFor(r.repo);
    service.engine.get(req.params.id); // 404 before a bad action's 400
    send(res, 200, service.view(await service.act(req.params.id, req.params.action)));
  }, true));
}
