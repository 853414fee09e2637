/** The log formats a server can write; kept apart from log.ts so parsing a setting does not load the logger. */
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
