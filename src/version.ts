export const VERSION = '0.1.0';
export const IMPLEMENTATION = 'mupdated';
/** Protocol extensions, advertised in the banner's version string (README, "Incremental resume"). */
export const EXTENSIONS = 'XRESUME';
