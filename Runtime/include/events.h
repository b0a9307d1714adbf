/* events.h: runtime-internal side of event channels (events.c); the Swift-facing API is in runtime.h. */
#ifndef EVENTS_H
#define EVENTS_H

#include "os.h"

/* Sends on a port without the bound-port bookkeeping (used by the console before init_events). */
int evtchn_send_raw(uint32_t port);

#endif
