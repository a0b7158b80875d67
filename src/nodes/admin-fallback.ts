import type { Handler, NodeAPI, Router } from './red';

// What the admin API answers where it has no route: JSON that says what is missing, never
// Express's HTML "Cannot GET" page (a script calling the API reads JSON, a person reads the
// sentence). Two handlers, one either side of the routes (Express runs a router's stack in order):
// - in front, installed when the node module loads (before any flow starts, so before the routes
//   a repository adds on deploy): while no repository is deployed, every /ota request gets 503
//   `no_repository`;
// - behind, added after the routes and removed with them: a path or method under /ota that no
//   route took gets 404 `not_found`.

const installed = new WeakSet<Router>();

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
  router.use('/ota', RED.auth.needsPermission('ota.read'), (_req, res, next) => {
    if (deployed(router)) next();
    else res.status(503).json(NO_REPOSITORY);
  });
}

/**
 * The handler that goes after the routes: nothing under /ota matched this method and path. One
 * function (permission check inside), so that removing it leaves no layer behind.
 */
export function notFound(RED: NodeAPI): Handler {
  const read = RED.auth.needsPermission('ota.read');
  return (req, res, next) => {
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
