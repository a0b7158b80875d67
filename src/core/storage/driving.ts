import type { OtaRepository } from '../repository';
import { dropRollouts, rolloutsFor } from '../rollouts/service';

// Rollouts run where the repository drives: always on files; on PostgreSQL on the lease holder
// alone. Taking the lease, an instance reloads the rollouts the last driver wrote (and replays
// its release journal) before it starts; losing it, it stops at once. `wanted` says whether any
// flow node uses the repository (rollouts start with the first user, as before).

export function driveRollouts(repo: OtaRepository, onError: (err: Error) => void): { wanted(): void; stop(): Promise<void> } {
  let want = false;
  let change: Promise<void> = Promise.resolve();
  const queue = (work: () => Promise<void>) => {
    change = change.then(work).catch(onError);
  };
  const onDriving = (driving: boolean) => {
    queue(async () => {
      await dropRollouts(repo);
      if (!driving || !want) return;
      await repo.backend?.reloadRollouts();
      if (repo.isDriver) rolloutsFor(repo).start();
    });
  };
  repo.on('driving', onDriving);
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
      want = false;
      await change;
      await dropRollouts(repo);
    },
  };
}
