/**
 * Cyrus's imapd.conf as settings of ours (`--imapd-conf`, `imapd_conf`): the
 * keys that mean something to a MUPDATE server are translated into our keys
 * and values; every other key is listed once, so the operator sees what was
 * left out. A `mupdate_KEY` line overrides `KEY`, as Cyrus's service-specific
 * options do for its mupdate service; `mupdate_admins` adds to `admins`.
 */
import { hostname } from 'node:os';
import { applySettings, ConfigError, SASL_MECHANISMS, type ServerConfig } from '../config.js';
import { cyrusDurationSeconds, cyrusSwitch, readImapdConf, type ImapdConfValue } from './read.js';

/** libsasl's own default for the saslauthd socket. */
export const DEFAULT_SASLAUTHD_PATH = '/var/run/saslauthd/mux';

export interface ImapdConfReport {
  file: string;
  /** Cyrus keys of the file with no meaning here, sorted. */
  ignored: string[];
  /** Keys read differently than Cyrus would, in words (logged as warnings). */
  notes: string[];
  /** All keys as read (the frontend takes its database defaults from them). */
  raw: Map<string, string>;
}

type Translate = (value: string, at: string, notes: string[]) => string | null;

const asIs: Translate = (v) => v;
const asSwitch: Translate = (v, at) => {
  const b = cyrusSwitch(v);
  if (b === null) throw new ConfigError(`${at}: expected a switch (yes/no, on/off, 1/0, true/false), got '${v}'`);
  return b ? 'yes' : 'no';
};
const asSeconds: Translate = (v, at) => {
  const s = cyrusDurationSeconds(v);
  if (s === null) throw new ConfigError(`${at}: expected a duration (seconds, or with a unit: 30s, 5m, 1h), got '${v}'`);
  return String(s);
};
const asMechanisms: Translate = (v, at, notes) => {
  const names = v.toUpperCase().split(/\s+/).filter(Boolean);
  const ours = names.filter((n) => (SASL_MECHANISMS as readonly string[]).includes(n));
  const others = names.filter((n) => !ours.includes(n));
  if (others.length) notes.push(`${at}: ${others.join(' ')} not offered (mupdated offers ${SASL_MECHANISMS.join(' ')})`);
  if (!ours.length) {
    notes.push(`${at}: none of its mechanisms is one of mupdated's, so all of mupdated's are offered`);
    return null;
  }
  return ours.join(' ');
};

/** Cyrus key -> [our key, how its value translates]. */
const MAPPED: Record<string, readonly [string, Translate]> = {
  admins: ['admins', asIs],
  servername: ['servername', asIs],
  allowplaintext: ['allowplaintext', asSwitch],
  tls_server_cert: ['tls_server_cert', asIs],
  tls_server_key: ['tls_server_key', asIs],
  tls_versions: ['tls_versions', asIs],
  tls_ciphers: ['tls_ciphers', asIs],
  sasl_mech_list: ['sasl_mech_list', asMechanisms],
  failedloginpause: ['failedloginpause', asSeconds],
  improved_mboxlist_sort: ['improved_mboxlist_sort', asSwitch],
  mupdate_connections_max: ['max_connections', asIs],
  mupdate_server: ['mupdate_server', asIs],
  mupdate_username: ['mupdate_username', asIs],
  mupdate_authname: ['mupdate_authname', asIs],
  mupdate_password: ['mupdate_password', asIs],
  mupdate_retry_delay: ['mupdate_retry_delay', asSeconds],
  client_timeout: ['client_timeout', asSeconds],
};

/** Read by the slave for a Cyrus frontend's database (frontend.ts). */
const FRONTEND_KEYS = ['mboxlist_db', 'sql_engine', 'sql_database', 'configdirectory'];

/** Applies the imapd.conf's settings onto `config`; says what it left out. */
export function applyImapdConf(config: ServerConfig, file: string, role: 'master' | 'slave'): ImapdConfReport {
  const keys = readImapdConf(file);
  const notes: string[] = [];
  const used = new Set<string>();
  const where = (v: ImapdConfValue, key: string) => `${v.file}:${v.line}: ${key}`;
  // The service-specific line wins over the generic one, whichever comes first.
  const pick = (key: string): [string, ImapdConfValue] | undefined => {
    const own = keys.get(`mupdate_${key}`);
    if (own && !key.startsWith('mupdate_')) return [`mupdate_${key}`, own];
    const generic = keys.get(key);
    return generic ? [key, generic] : undefined;
  };
  const settings = new Map<string, string>();
  for (const [cyrusKey, [ourKey, translate]] of Object.entries(MAPPED)) {
    const found = pick(cyrusKey);
    if (!found) continue;
    const [name, v] = found;
    used.add(name);
    if (name !== cyrusKey) used.add(cyrusKey);
    const value = translate(v.value, where(v, name), notes);
    if (value !== null) settings.set(ourKey, value);
  }
  // mupdate_admins adds to admins (imapd.conf(5)) rather than replacing them.
  const extraAdmins = keys.get('mupdate_admins');
  if (extraAdmins) {
    used.add('admins');
    const all = [keys.get('admins')?.value ?? '', extraAdmins.value].join(' ').split(/\s+/).filter(Boolean);
    settings.set('admins', [...new Set(all)].join(' '));
  }
  // Cyrus names the host when servername is not set.
  if (!settings.has('servername')) settings.set('servername', hostname());
  const pwcheck = pick('sasl_pwcheck_method');
  if (pwcheck) {
    used.add(pwcheck[0]);
    const methods = pwcheck[1].value.toLowerCase().split(/\s+/);
    if (methods.includes('saslauthd')) {
      const path = pick('sasl_saslauthd_path');
      if (path) used.add(path[0]);
      settings.set('saslauthd_socket', path?.[1].value ?? DEFAULT_SASLAUTHD_PATH);
    }
    if (methods.includes('auxprop')) {
      notes.push(
        `${where(pwcheck[1], pwcheck[0])}: auxprop passwords (sasldb) are not read; logins are checked against mupdated's own users ('mupdated user add')`,
      );
    }
  }
  const frontend = keys.has('sql_database') || keys.get('mboxlist_db')?.value === 'sql';
  if (role === 'slave' && frontend) for (const k of FRONTEND_KEYS) if (keys.has(k)) used.add(k);
  for (const [key, value] of settings) {
    try {
      applySettings(config, new Map([[key, value]]));
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${file}: ${err.message}`);
      throw err;
    }
  }
  return {
    file,
    ignored: [...keys.keys()].filter((k) => !used.has(k)).sort(),
    notes,
    raw: new Map([...keys].map(([k, v]) => [k, v.value])),
  };
}
