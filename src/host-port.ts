/** A TCP address as the server listens on it and tools connect to it. */
export interface HostPort {
  host: string;
  port: number;
}
