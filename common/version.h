/* version: what this build of presenced is; PRESENCED_COMMIT and PRESENCED_BUILD come from make. */
#ifndef PRESENCED_VERSION_H
#define PRESENCED_VERSION_H

#define PRESENCED_VERSION "0.1.0"
#ifndef PRESENCED_SOURCE
#define PRESENCED_SOURCE "unknown"
#endif

#ifndef PRESENCED_COMMIT
#define PRESENCED_COMMIT "unknown"
#endif
#ifndef PRESENCED_BUILD
#define PRESENCED_BUILD "unknown"
#endif

#endif
