import type { OtaRepository } from '../repository';
import { dropRollouts, rolloutsFor } from '../rollouts/service';

// Rollouts run where the repository drives: always on files; on PostgreSQL on the lease holder
// alone. Taking the lease, an instance reloads the rollouts the last driver wrote (and replays
// its release journal) before it starts; losing it, it stops at once. `wanted` says whether any
// flow node uses the repository (rollouts start with the first user, as before).

/** Dropping the rollouts of an instance that no longer drives: its last write is refused, and that is right. */
function drop(repo: OtaRepository): Promise<void> {
  return dropRollouts(repo).catch((err: Error & { code?: string }) => {
    if (err.code !== 'not_driver') throw err;
  });
}

export function driveRollouts(repo: OtaRepository, onError: (err: Error) => void): { wanted(): void; stop(): Promise<void> } {
  let want = false;
  let change: Promise<void> = Promise.resolve();
  const queue = (work: () => Promise<void>) => {
    change = change.then(work).catch(onError);
  };
  const onDriving = (driving: boolean) => {
    queue(async () => {
      await drop(repo);
      if (!driving || !want) return;
      await repo.backend?.reloadRollouts();
      if (repo.isDriver) rolloutsFor(repo).start();
    });
  };
  repo.on('driving', onDriving);
  // Elsewhere the driver changed a rollout (paused it, say): rebuild this instance's view of the
  // rollouts from the database, at most every half second.
  let refresh: ReturnType<typeof setTimeout> | undefined;
  const onRemote = () => {
    if (repo.isDriver || refresh) return;
    refresh = setTimeout(() => {
      refresh = undefined;
      queue(async () => {
        if (repo.isDriver) return;
        await repo.backend?.reloadRollouts();
        await drop(repo);
      });
    }, 500);
    refresh.unref?.();
  };
  repo.on('remoteRollout', onRemote);
  return {
    wanted() {
      if (want) return;
      want = true;
      queue(async () => {
        await repo.ready;
        if (repo.isDriver) rolloutsFor(repo).start();
      });
    },
    async stop() {
      repo.off('driving', onDriving);
      repo.off('remoteRollout', onRemote);
      if (refresh) clearTimeout(refresh);
      want = false;
      await change;
      await drop(repo);
    },
  };
}
