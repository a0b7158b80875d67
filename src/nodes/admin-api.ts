import { OtaError } from '../core/types';
import { assign, bodyParserError, checkFields, deviceView, registerDevice, requireJsonType, statusFor, storeFirmware, unassign, UploadFields } from '../core/admin/requests';
import { multipartBoundary, parseMultipart } from '../core/admin/multipart';
import { trackerFor } from '../core/device-updates/tracker';
import { ErrorHandler, Handler, HttpRequest, HttpResponse, NodeAPI, Router, removeRoutes } from './red';
import type { OtaRepositoryNode } from './repository-node';
import { ROLLOUT_PATHS, rolloutRoutes } from './rollouts-api';
import { installAdminFallback, notFound } from './admin-fallback';

// The admin HTTP API under /ota on RED.httpAdmin (so behind adminAuth when it is on): firmware,
// devices, assignments, rollout summary. Registered once per runtime however many repository
// nodes exist (?repository=<config node id> picks one; default the first), removed when the last
// one closes. The work itself is in src/core/admin/requests.ts.

const PATHS = ['/ota/firmware', '/ota/firmware/:id', '/ota/devices', '/ota/devices/:id', '/ota/assignments', '/ota/rollout', ...ROLLOUT_PATHS];
/** Where the body-parser error handler listens (prefixes: /ota/firmware covers /ota/firmware/:id). */
const PREFIXES = ['/ota/firmware', '/ota/devices', '/ota/assignments', '/ota/rollout', '/ota/rollouts'];
/** Room for multipart headers and fields around the image. */
const MULTIPART_OVERHEAD = 64 * 1024;

interface ApiState {
  repos: Map<string, OtaRepositoryNode>;
  onBodyError: ErrorHandler;
  /** After every route (keep it the last thing routes() adds): JSON 404 for what none took. */
  onNotFound: Handler;
}
// Keyed by router, not module-global: a test harness may start several runtimes in one process.
const states = new WeakMap<Router, ApiState>();

/** JSON routes take JSON (see requireJsonType). */
function requireJson(req: HttpRequest): void {
  requireJsonType(req.headers['content-type'], req.headers['content-length'], req.headers['transfer-encoding']);
}

function one(value: string | string[] | undefined, field: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new OtaError('bad_field', `${field} must be given once`, field);
  return value;
}

/** Reads a request body Node-RED's admin app left unparsed (raw and multipart uploads), bounded. */
function readBody(req: HttpRequest, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(req.body)) return Promise.resolve(req.body);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new OtaError('image_too_large', `the upload is ${declared} bytes, over the limit of ${limit}`, 'body'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new OtaError('image_too_large', `the upload is over the limit of ${limit} bytes`, 'body'));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (!failed) reject(err);
      failed = true;
    });
  });
}

async function upload(req: HttpRequest, repoNode: OtaRepositoryNode): Promise<{ image: Buffer; fields: UploadFields; from: string }> {
  const type = req.headers['content-type'] ?? '';
  const q = req.query;
  const fields: UploadFields = {
    title: one(q.title, 'title'),
    version: one(q.version, 'version'),
    tag: one(q.tag, 'tag'),
    deviceType: one(q.deviceType, 'deviceType'),
  };
  if (/^\s*(application\/json|application\/x-www-form-urlencoded|text\/)/i.test(type)) {
    throw new OtaError('unsupported_media_type', 'send the image as application/octet-stream (title and version in the query) or as multipart/form-data', 'body');
  }
  const max = repoNode.repo.firmware.maxImageBytes;
  if (/^\s*multipart\//i.test(type)) {
    const boundary = multipartBoundary(type);
    if (!boundary) throw new OtaError('bad_multipart', 'multipart/form-data needs a boundary parameter', 'body');
    const parts = parseMultipart(await readBody(req, max + MULTIPART_OVERHEAD), boundary);
    const file = parts.find((p) => p.filename !== undefined) ?? parts.find((p) => p.name === 'file' || p.name === 'image');
    if (!file) throw new OtaError('missing_file', 'the form has no file part (name it "file")', 'file');
    checkFields(Object.fromEntries(parts.filter((p) => p !== file && p.filename === undefined).map((p) => [p.name, true])), 'upload');
    for (const key of ['title', 'version', 'tag', 'deviceType'] as const) {
      const part = parts.find((p) => p.name === key && p.filename === undefined);
      if (part) fields[key] = part.data.toString('utf8');
    }
    return { image: file.data, fields, from: 'file' };
  }
  return { image: await readBody(req, max), fields, from: 'body' };
}

/** DELETE bodies are unusual: also accept ?devices=a,b or ?tag=x (and ?firmware=id). */
function deleteBody(req: HttpRequest): unknown {
  const body = req.body;
  if (body && typeof body === 'object' && !Buffer.isBuffer(body) && Object.keys(body).length) return body;
  const devices = one(req.query.devices, 'devices');
  const tag = one(req.query.tag, 'tag');
  const firmware = one(req.query.firmware, 'firmware');
  if (devices === undefined && tag === undefined) return body;
  return {
    ...(devices !== undefined ? { devices: devices.split(',').map((d) => d.trim()).filter(Boolean) } : {}),
    ...(tag !== undefined ? { tag } : {}),
    ...(firmware !== undefined ? { firmware } : {}),
  };
}

function send(res: HttpResponse, status: number, body: unknown): void {
  if (!res.headersSent) res.status(status).json(body);
}

/** The API's error shape, the same for every route and every failure. */
function sendError(res: HttpResponse, status: number, err: OtaError): void {
  // Stop reading a refused body: the client gets the answer and the connection closes.
  if (status === 413 && !res.headersSent) res.setHeader('Connection', 'close');
  send(res, status, { error: err.message, code: err.code, ...(err.field !== undefined ? { field: err.field } : {}) });
}

function routes(RED: NodeAPI, state: ApiState): void {
  const router = RED.httpAdmin;
  const read = RED.auth.needsPermission('ota.read');
  const write = RED.auth.needsPermission('ota.write');

  function repoFor(req: HttpRequest): OtaRepositoryNode {
    const wanted = one(req.query.repository, 'repository');
    const repoNode = wanted ? state.repos.get(wanted) : state.repos.values().next().value;
    if (!repoNode) throw new OtaError('unknown_repository', wanted ? `no OTA repository with id ${wanted}` : 'no OTA repository is deployed', 'repository');
    return repoNode;
  }

  /** Runs a handler with errors turned into JSON answers; `inPath` makes unknown ids 404. */
  const handle = (fn: (req: HttpRequest, res: HttpResponse, repoNode: OtaRepositoryNode) => unknown, inPath = false): Handler =>
    (req, res) => {
      Promise.resolve()
        .then(() => fn(req, res, repoFor(req)))
        .catch((err: unknown) => {
          if (err instanceof OtaError) {
            sendError(res, statusFor(err, inPath), err);
          } else {
            RED.log.error(`ota admin API: ${err instanceof Error ? err.message : String(err)}`);
            sendError(res, 500, new OtaError('internal', 'internal error'));
          }
        });
    };

  router.get('/ota/firmware', read, handle((_req, res, r) => send(res, 200, r.repo.firmware.list())));
  router.get('/ota/firmware/:id', read, handle((req, res, r) => send(res, 200, r.repo.firmware.resolve(req.params.id)), true));
  router.post('/ota/firmware', write, handle(async (req, res, r) => {
    const { image, fields, from } = await upload(req, r);
    try {
      const { record, created } = await storeFirmware(r.repo, image, fields);
      send(res, created ? 201 : 200, record);
    } catch (err) {
      // The catalogue names the image `payload` (its msg property); here it is the body or file.
      if (err instanceof OtaError && err.field === 'payload') throw new OtaError(err.code, err.message, from);
      throw err;
    }
  }));
  router.delete('/ota/firmware/:id', write, handle(async (req, res, r) => send(res, 200, await r.repo.deleteFirmware(req.params.id)), true));

  router.get('/ota/devices', read, handle((_req, res, r) => send(res, 200, r.repo.devices.list().map((d) => deviceView(r.repo, d)))));
  router.get('/ota/devices/:id', read, handle((req, res, r) => send(res, 200, deviceView(r.repo, r.repo.devices.require(req.params.id))), true));
  router.post('/ota/devices', write, handle(async (req, res, r) => {
    requireJson(req);
    const result = await registerDevice(r.repo, req.body);
    send(res, result.created ? 201 : 200, result);
  }));
  router.delete('/ota/devices/:id', write, handle(async (req, res, r) => {
    const device = r.repo.devices.require(req.params.id);
    trackerFor(r.repo).unassign([device.id]);
    await r.repo.devices.remove(device.id);
    r.repo.rollout.forget(device.id);
    send(res, 200, deviceView(r.repo, device));
  }, true));

  router.post('/ota/assignments', write, handle(async (req, res, r) => {
    requireJson(req);
    send(res, 200, await assign(r.repo, trackerFor(r.repo), req.body));
  }));
  router.delete('/ota/assignments', write, handle((req, res, r) => {
    requireJson(req);
    send(res, 200, unassign(r.repo, trackerFor(r.repo), deleteBody(req)));
  }));
  router.get('/ota/rollout', read, handle((_req, res, r) => send(res, 200, { summary: r.repo.rollout.summary(), devices: r.repo.rollout.list() })));
  rolloutRoutes(router, { read, write, handle, requireJson, send });
  for (const app of parsingApps(router)) app.use(PREFIXES, state.onBodyError);
  router.use('/ota', state.onNotFound);
}

/** Answers /ota with JSON before any repository is deployed (see admin-fallback.ts). */
export function installAdminApiFallback(RED: NodeAPI): void {
  installAdminFallback(RED, (router) => (states.get(router)?.repos.size ?? 0) > 0);
}

/**
 * Where a body-parser error surfaces: RED.httpAdmin is the runtime's admin app, mounted in the
 * editor API's app, which parses JSON and urlencoded bodies before ours runs. A parse error
 * there skips every mounted app and reaches that app's end: the error handler goes there too
 * (and on RED.httpAdmin itself, where a test harness parses bodies).
 */
function parsingApps(router: Router): Router[] {
  return router.parent && typeof router.parent.use === 'function' ? [router, router.parent] : [router];
}

/** Makes a repository reachable through the admin API; the returned function detaches it. */
export function attachAdminApi(RED: NodeAPI, repoNode: OtaRepositoryNode): () => void {
  const router = RED.httpAdmin;
  if (!router || !RED.auth) return () => undefined;
  let state = states.get(router);
  if (!state) {
    const onBodyError: ErrorHandler = (err, _req, res, next) => {
      if (res.headersSent) {
        next(err);
        return;
      }
      const { status, error } = bodyParserError(err);
      if (status >= 500) RED.log.error(`ota admin API: ${err instanceof Error ? err.message : String(err)}`);
      sendError(res, status, error);
    };
    state = { repos: new Map(), onBodyError, onNotFound: notFound(RED) };
    states.set(router, state);
    routes(RED, state);
  }
  state.repos.set(repoNode.id, repoNode);
  const mine = state;
  return () => {
    if (mine.repos.get(repoNode.id) === repoNode) mine.repos.delete(repoNode.id);
    if (mine.repos.size === 0 && states.get(router) === mine) {
      for (const p of PATHS) removeRoutes(router, p);
      for (const app of parsingApps(router)) {
        const stack = app._router?.stack ?? [];
        for (let i = stack.length - 1; i >= 0; i--) if (stack[i].handle === mine.onBodyError || stack[i].handle === mine.onNotFound) stack.splice(i, 1);
      }
      states.delete(router);
    }
  };
}
