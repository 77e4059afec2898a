// Start-up failures the operator fixes (a taken port, an address not on this machine): main
// prints the message as one line and exits 2, as for a bad config.

import { ListenError } from '../util/listen-error.js';

export class StartupError extends Error {
  override name = 'StartupError';
}

/** Runs `open`; a ListenError becomes a StartupError naming the config key (or flag) it came from. */
export async function listeningFor<T>(key: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (error) {
    if (error instanceof ListenError) throw new StartupError(`config error: ${key}: ${error.message}`);
    throw error;
  }
}
