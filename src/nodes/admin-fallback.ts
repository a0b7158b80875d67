import type { Handler, HttpRequest, NodeAPI, Router } from './red';

// What the admin API answers where it has no route: JSON that says what is missing, never
// Express's HTML "Cannot GET" page (a script calling the API reads JSON, a person reads the
// sentence). Two handlers, one either side of the routes (Express runs a router's stack in order):
// - in front, installed when the node module loads (before any flow starts, so before the routes
//   a repository adds on deploy): while no repository is deployed, every /ota request gets 503
//   `no_repository`;
// - behind, added after the routes and removed with them: a path or method under /ota that no
//   route took gets 404 `not_found`.
// Both let through what a route on RED.httpNode takes (see nodeRouteTakes).

const installed = new WeakSet<Router>();

/** An Express 4 or 5 router layer, as far as telling whether a route would take a request. */
interface Layer {
  route?: { methods?: Record<string, boolean>; _handles_method?(method: string): boolean };
  match?(path: string): boolean;
}

/**
 * Whether a route on RED.httpNode takes this request. With Node-RED's default settings the admin
 * and node apps share the root `/`, and the admin app runs first: a request for the repository's
 * download route (/ota/dl/...) or a flow's own `http in` under /ota passes through here first and
 * must go on to the node app.
 */
function nodeRouteTakes(RED: NodeAPI, method: string, path: string): boolean {
  const node = RED.httpNode as Router & { router?: { stack?: Layer[] } };
  let stack: Layer[];
  try {
    // Express 4 keeps it in _router (its `router` getter throws); Express 5 (Node-RED 5) in router.
    stack = (node?._router?.stack ?? node?.router?.stack ?? []) as Layer[];
  } catch {
    return false;
  }
  const m = method.toLowerCase();
  return stack.some((layer) => {
    if (!layer.route || typeof layer.match !== 'function' || !layer.match(path)) return false;
    const route = layer.route;
    if (typeof route._handles_method === 'function') return route._handles_method(m);
    return Boolean(route.methods?.[m] || route.methods?._all || (m === 'head' && route.methods?.get));
  });
}

/** Whether the admin and node apps are mounted at the same root (then a node route may be behind us). */
function sharedRoot(RED: NodeAPI): boolean {
  const root = (v: unknown) => (typeof v === 'string' && v ? v : '/').replace(/\/+$/, '') || '/';
  return root(RED.settings.httpAdminRoot) === root(RED.settings.httpNodeRoot);
}

/** The request is for the node app, not for us. Its path there: ours under `use('/ota')` has /ota taken off. */
function forNodeApp(RED: NodeAPI, req: HttpRequest): boolean {
  const path = `/ota${(req.url ?? '').split('?')[0]}`;
  return sharedRoot(RED) && nodeRouteTakes(RED, req.method ?? 'GET', path);
}

export const NO_REPOSITORY = {
  error: 'no OTA repository is deployed: add an ota-repository config node used by a node and deploy',
  code: 'no_repository',
};

/** Installs the front handler once per admin router; `deployed` says whether any repository serves. */
export function installAdminFallback(RED: NodeAPI, deployed: (router: Router) => boolean): void {
  const router = RED.httpAdmin;
  if (!router || !RED.auth || installed.has(router)) return;
  installed.add(router);
  // Behind adminAuth as the routes are: an anonymous caller learns nothing about the runtime.
  const read = RED.auth.needsPermission('ota.read');
  const front: Handler = (req, res, next) => {
    if (deployed(router) || forNodeApp(RED, req)) {
      next();
      return;
    }
    read(req, res, (err?: unknown) => (err ? next(err) : res.status(503).json(NO_REPOSITORY)));
  };
  router.use('/ota', front);
}

/**
 * The handler that goes after the routes: nothing under /ota matched this method and path. One
 * function (permission check inside), so that removing it leaves no layer behind.
 */
export function notFound(RED: NodeAPI): Handler {
  const read = RED.auth.needsPermission('ota.read');
  return (req, res, next) => {
    if (forNodeApp(RED, req)) {
      next();
      return;
    }
    read(req, res, (err?: unknown) => {
      if (err) {
        next(err);
        return;
      }
      const path = (req.originalUrl ?? req.url ?? '').split('?')[0].slice(0, 200);
      res.status(404).json({ error: `the OTA admin API has no ${req.method} ${path}`, code: 'not_found' });
    });
  };
}
