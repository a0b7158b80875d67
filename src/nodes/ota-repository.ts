import { installTcpNoDelay } from './tcp-nodelay';
import * as path from 'path';
import { OtaRepository, DEFAULT_DOWNLOAD_PATH } from '../core/repository';
import { serveDownload } from '../core/firmware/download';
import { DEFAULT_MAX_IMAGE_BYTES } from '../core/firmware/catalogue';
import { trackerFor } from '../core/device-updates/tracker';
import { driveRollouts } from '../core/storage/driving';
import { ErrorThrottle } from '../core/error-throttle';
import { deliveryFor } from '../core/chunking';
import { NodeAPI, Node, HttpRequest, HttpResponse, removeRoutes } from './red';
import { defaultPublicUrl } from './public-url';
import { attachAdminApi, installAdminApiFallback } from './admin-api';
import { runHomeAssistant } from './home-assistant';

// The OTA repository config node: owns the catalogue, blobs, device list and rollout state in one
// storage directory, and the signed download route on RED.httpNode. Flow nodes register with it
// like core's mqtt-broker config node, and it serves as long as any of them is deployed.

import type { OtaRepositoryDef, OtaRepositoryNode } from './repository-node';

function positive(value: unknown, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** A storage path from the editor: relative paths are under the Node-RED user directory. */
function storageDirFor(RED: NodeAPI, configured: string | undefined): string {
  const base = RED.settings.userDir ?? process.cwd();
  const dir = (configured ?? '').trim() || 'mqtt-ota';
  return path.resolve(base, dir);
}

// Two config nodes on one storage directory (say, two example flows imported side by side) must
// not each load and rewrite the same files: they share one OtaRepository, opened by the first and
// flushed when the last one closes. The same goes for the download route they register.
const shared = new Map<string, { repo: OtaRepository; nodes: number; settings: string; rollouts: ReturnType<typeof driveRollouts> }>();
const routes = new Map<string, { users: number; repo: OtaRepository }>();

export = function (RED: NodeAPI) {
  installAdminApiFallback(RED);
  function OtaRepositoryConfig(this: OtaRepositoryNode, config: OtaRepositoryDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    installTcpNoDelay(RED, node, config.tcpNoDelay); // default on: see src/nodes/tcp-nodelay.ts
    const downloadPath = (config.downloadPath || DEFAULT_DOWNLOAD_PATH).replace(/\/+$/, '') || DEFAULT_DOWNLOAD_PATH;
    const postgresUrl = (node.credentials?.postgresUrl || '').trim();
    if (config.backend === 'postgres' && !postgresUrl) {
      node.error(RED._('ota-repository.errors.noPostgresUrl'));
      return;
    }
    const options = {
      dir: storageDirFor(RED, config.storageDir),
      ...(config.backend === 'postgres' ? { storage: { kind: 'postgres' as const, connectionString: postgresUrl } } : {}),
      secret: node.credentials?.secret || undefined,
      maxImageBytes: Math.round(positive(config.maxImageMB, DEFAULT_MAX_IMAGE_BYTES / 1048576) * 1048576),
      urlTtlSeconds: Math.round(positive(config.urlTtlDays, 7) * 86400),
      publicUrl: (config.publicUrl || '').trim() || defaultPublicUrl(RED.settings),
      downloadPath,
    };
    const settings = JSON.stringify({ ...options, secret: options.secret ? 'set' : '', storage: options.storage ? 'postgres' : 'files' });
    let entry = shared.get(options.dir);
    if (entry) {
      entry.nodes += 1;
      if (entry.settings !== settings) {
        node.warn(RED._('ota-repository.warn.shared', { dir: options.dir }));
      }
    } else {
      const repo = new OtaRepository(options);
      // Rollouts run on the driver only (every instance on files; the lease holder on PostgreSQL).
      entry = { repo, nodes: 1, settings, rollouts: driveRollouts(repo, (err) => node.error(err.message)) };
      shared.set(options.dir, entry);
      // The database away: one line per 10 s, not one per retried write.
      const throttle = new ErrorThrottle(10_000);
      const report = (err: Error) => {
        if (throttle.admit('storage', Date.now()).report) node.error(RED._('ota-repository.errors.postgres', { message: err.message }));
      };
      repo.on('storageError', report);
      repo.ready.catch(report);
      // The ota-gateway command line may share the directory: follow its device-list writes.
      entry.repo.devices.watch();
      entry.repo.devices.on('reloadError', (err: Error) => node.error(err.message));
    }
    const mine = entry;
    node.repo = entry.repo;
    node.users = new Map();
    // One rollout timer per repository (timeouts, retries), running from the first user on.
    const tracker = trackerFor(node.repo);
    const rollouts = entry.rollouts;
    node.register = (user: Node) => {
      node.users.set(user.id, user);
      tracker.start();
      rollouts.wanted();
    };
    node.deregister = (user: Node) => {
      node.users.delete(user.id);
    };

    const route = `${downloadPath}/:firmware/:device`;
    // The compact form of the same URL (Tasmota's OtaUrl holds 150 characters): url-signing.ts.
    const compactRoute = `${route}/:key/:file`;
    const handler = (req: HttpRequest, res: HttpResponse) => {
      const q = (k: string) => (typeof req.query[k] === 'string' ? (req.query[k] as string) : undefined);
      const served = routes.get(route)?.repo ?? node.repo;
      const images = deliveryFor(served, (r) => served.firmware.read(r)).cache;
      const compact = typeof req.params.key === 'string' && typeof req.params.file === 'string' ? { key: req.params.key, file: req.params.file } : undefined;
      serveDownload(served, { firmware: req.params.firmware, device: req.params.device, expires: q('e'), signature: q('s'), ...(compact ? { compact } : {}) }, req, res, (r) => images.get(r));
    };
    // Express answers HEAD with the GET route; serveDownload sends headers only for HEAD.
    const routeEntry = routes.get(route);
    if (!routeEntry) {
      RED.httpNode.get(route, handler);
      RED.httpNode.get(compactRoute, handler);
      routes.set(route, { users: 1, repo: node.repo });
    } else {
      if (routeEntry.repo !== node.repo) node.warn(RED._('ota-repository.warn.sharedRoute', { path: downloadPath }));
      routeEntry.users += 1;
      routeEntry.repo = node.repo;
    }

    const detachAdminApi = attachAdminApi(RED, node);
    // Opt-in: Home Assistant update entities for the devices (src/nodes/home-assistant.ts), from
    // the driving Node-RED when several share a database.
    const stopHomeAssistant = runHomeAssistant(RED, node, node.repo, config);

    node.on('close', (_removed, closed) => {
      // The Home Assistant bridge says offline and disconnects first.
      const done = stopHomeAssistant ? () => stopHomeAssistant(closed) : closed;
      const r = routes.get(route);
      if (r && r.users > 1) r.users -= 1;
      else {
        routes.delete(route);
        removeRoutes(RED.httpNode, route);
        removeRoutes(RED.httpNode, compactRoute);
      }
      detachAdminApi();
      mine.nodes -= 1;
      if (mine.nodes > 0) {
        done();
        return;
      }
      shared.delete(options.dir);
      node.repo.devices.unwatch();
      const stopped = rollouts.stop();
      tracker.stop();
      // A stuck disk must not hold a redeploy: Node-RED gives close handlers about 15 s.
      const guard = setTimeout(done, 10000);
      Promise.all([stopped, stopped.then(() => node.repo.close())]).then(
        () => { clearTimeout(guard); done(); },
        (err: Error) => { clearTimeout(guard); node.error(err); done(); },
      );
    });
  }

  RED.nodes.registerType('ota-repository', OtaRepositoryConfig, {
    credentials: { secret: { type: 'password' }, postgresUrl: { type: 'password' } },
  });
};
