#!/usr/bin/env node
// The taskgrant operator process: parse config, start everything, stop cleanly on SIGTERM/SIGINT.
import { CommanderError } from 'commander';
import { loadConfig } from './config.js';
import { startOperator } from './operator.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    throw err;
  }
  const operator = await startOperator(config);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    operator.logger.info({ signal }, 'shutting down');
    operator
      .stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        operator.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  void operator.lostLeadership.then(() => {
    stopping = true;
    void operator.stop().finally(() => process.exit(1));
  });
}

main().catch((err: unknown) => {
  console.error('taskgrant failed to start:', err);
  process.exit(1);
});
