import type { OtaRepository } from '../repository';
import { dropRollouts, rolloutsFor } from '../rollouts/service';

// Rollouts run where the repository drives: always on files; on PostgreSQL on the lease holder
// alone. Taking the lease, an instance reloads the rollouts the last driver wrote (and replays
// its release journal) before it starts; losing it, it stops at once. `wanted` says whether any
// flow node uses the repository (rollouts start with the first user, as before).

/** Dropping the rollouts of an instance that no longer drives: its last write is refused, and that is right. */
function drop(repo: OtaRepository): Promise<boolean> {
  return dropRollouts(repo).catch((err: Error & { code?: string }) => {
    if (err.code !== 'not_driver') throw err;
    return true;
  });
}

/**
 * Reloads the rollouts until no view was built meanwhile: one built during a reload (an API call
 * creating a rollout, say) holds what was loaded before, plus what it wrote since; dropped, and
 * read again, the next view holds both.
 */
async function reload(repo: OtaRepository): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await repo.backend?.reloadRollouts();
    if (!(await drop(repo))) return;
  }
}

export function driveRollouts(repo: OtaRepository, onError: (err: Error) => void): { wanted(): void; stop(): Promise<void> } {
  let want = false;
  let change: Promise<void> = Promise.resolve();
  const queue = (work: () => Promise<void>) => {
    change = change.then(work).catch(onError);
  };
  const onDriving = (driving: boolean) => {
    // Losing the lease stops the engine now, not after what is queued: another instance may take
    // over as soon as the lease expires.
    if (!driving) void drop(repo).catch(onError);
    queue(async () => {
      await drop(repo);
      if (!driving || !want) return;
      await reload(repo);
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
        await reload(repo);
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
