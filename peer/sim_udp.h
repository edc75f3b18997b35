/*  sim_udp: the UDP socket under a sim's DISH, and its receive buffer.

    libzmq's UDP engine neither applies ZMQ_RCVBUF nor exposes its socket,
    so a DISH gets the kernel's default buffer (net.core.rmem_default,
    usually 208 KiB: thirteen 8 KiB datagrams). This module finds the
    socket a DISH bound, among the process's own descriptors, by the port
    it is bound to, and sets SO_RCVBUF on it; the kernel caps the request
    at net.core.rmem_max. The state stream grants credit from what the
    kernel then gives, so a larger buffer is a larger window. */

#ifndef SIM_UDP_H_INCLUDED
#define SIM_UDP_H_INCLUDED

#include "common/sf_error.h"

#include <stdbool.h>
#include <stddef.h>

//  The port of a udp:// (or any proto://host:port) ENDPOINT, or 0 if it
//  names none.
int sim_udp_port (const char *endpoint);

//  False if a socket, of any process, already holds the UDP address of
//  ENDPOINT (udp://HOST:PORT, HOST * for every address). libzmq binds a
//  DISH with SO_REUSEADDR, with which Linux lets a second socket bind a
//  port in use and take a share of its datagrams: a sim checks first.
//  True as well when ENDPOINT cannot be checked (libzmq reports it).
bool sim_udp_free (const char *endpoint);

//  This process's UDP socket bound to PORT, or -1 if there is none.
int sim_udp_socket (int port);

//  Ask for BYTES of receive buffer (0: leave it as it is) on the UDP
//  socket bound to PORT, waiting up to WAIT_MS for it to be bound (libzmq
//  binds it on its I/O thread after zmq_bind returns). Returns the bytes
//  the socket may queue (SO_RCVBUF as the kernel reports it, halved: the
//  kernel doubles a request to cover its bookkeeping), or 0 with FAULT set
//  if the socket was not found or refused the request.
size_t sim_udp_size (int port, size_t bytes, unsigned wait_ms,
                     sf_fault_t *fault);

//  What a UDP socket may queue unless asked otherwise: half of
//  net.core.rmem_default (208 KiB on most systems), as above.
size_t sim_udp_default (void);

//  Self test; returns 0 on success.
int sim_udp_test (bool verbose);

#endif
