// Structured JSON logs (pino: fast, line-delimited JSON, redaction built in).
// Every call site passes a metadata object first and a constant message second.
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

// Defence in depth: nothing should ever log a token, but if an object carrying one slips into
// a log call these paths are masked before the line is written.
const redactPaths = [
  'token', '*.token', 'access_token', '*.access_token', 'subject_token', '*.subject_token',
  'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
  'status.token', 'bearerToken', '*.bearerToken',
];

export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { component: 'taskgrant' },
    redact: { paths: redactPaths, censor: '[REDACTED]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A logger that writes nothing, for unit tests that do not assert on logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
