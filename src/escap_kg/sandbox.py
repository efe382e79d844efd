"""A seccomp filter that stops the query processes from ever creating a network socket.

Installed in the zygote once it holds the graph, before it forks any worker, so neither it nor
any worker can open a connection whatever a query asks of Oxigraph (SERVICE, LOAD): the kernel
refuses, not just the endpoint's lexer. The filter is a small classic-BPF program of our own,
installed with ctypes and the seccomp(2) system call. We considered pyseccomp (a ctypes wrapper,
last released in 2021) and libseccomp's own bindings (not on PyPI as wheels): a few instructions
of our own are fewer moving parts than either, and no new dependency.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import struct
import sys
from dataclasses import dataclass

__all__ = ["SandboxError", "die_with_parent", "guard_supported", "install_network_guard"]


class SandboxError(RuntimeError):
    """The network guard cannot be installed here; the message says why.

    A RuntimeError rather than an OSError: it means the platform lacks a capability, and a
    caller's ``except OSError`` around ordinary I/O must not swallow it.
    """


@dataclass(frozen=True)
class _Arch:
    """What the filter needs to know about one system call ABI."""

    audit: int  # AUDIT_ARCH_*, as the kernel reports it in seccomp_data.arch
    socket: int
    seccomp: int
    has_x32: bool  # x86_64 kernels also accept x32 system calls, numbered from 0x40000000


_ARCHES = {
    "x86_64": _Arch(audit=0xC000003E, socket=41, seccomp=317, has_x32=True),
    "aarch64": _Arch(audit=0xC00000B7, socket=198, seccomp=277, has_x32=False),
}
_IO_URING_SETUP = 425  # the same number on both
_X32_SYSCALL_BIT = 0x40000000

# <linux/prctl.h>, <linux/seccomp.h>, <linux/filter.h>
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_GET_ACTION_AVAIL = 2
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: load the 32-bit word at offset k
_BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_BPF_RET_K = 0x06  # BPF_RET | BPF_K
_NR_OFFSET = 0  # struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }
_ARCH_OFFSET = 4


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


def _arch_for(machine: str, pointer_size: int = struct.calcsize("P")) -> _Arch:
    """The ABI of an interpreter on ``machine`` (``platform.machine()``) with pointers of
    ``pointer_size`` bytes; SandboxError if the filter does not know it.

    A 32-bit interpreter on a 64-bit kernel makes 32-bit system calls, which the filter
    would kill, so it is refused here rather than at its first system call.
    """
    arch = _ARCHES.get(machine)
    if arch is None:
        raise SandboxError(f"unsupported architecture {machine or 'unknown'}")
    if pointer_size != 8:
        raise SandboxError(f"unsupported {pointer_size * 8}-bit interpreter on {machine}")
    return arch


def _program(arch: _Arch) -> list[tuple[int, int, int, int]]:
    """The filter, as classic BPF instructions ``(code, jt, jf, k)``.

    The kernel runs it on every system call of the process, with ``struct seccomp_data``
    (the call's number and its ABI) as input; jumps count the instructions to skip::

        load seccomp_data.arch
        not this process's ABI?           -> kill the process  (no 32-bit back door)
        load seccomp_data.nr
        x86_64 only: nr >= 0x40000000?    -> EACCES            (the x32 ABI)
        nr == socket?                     -> EACCES            (every address family)
        nr == io_uring_setup?             -> EACCES            (io_uring can open sockets too)
        otherwise                         -> allow

    Sockets that already exist keep working: send, recv, sendmsg... are allowed.
    """
    checks = [(_BPF_JGE_K, _X32_SYSCALL_BIT)] if arch.has_x32 else []
    checks += [(_BPF_JEQ_K, arch.socket), (_BPF_JEQ_K, _IO_URING_SETUP)]
    program = [
        (_BPF_LD_W_ABS, 0, 0, _ARCH_OFFSET),
        # Skip the checks, "allow" and "deny" when the ABI is wrong, landing on "kill".
        (_BPF_JEQ_K, 0, len(checks) + 3, arch.audit),
        (_BPF_LD_W_ABS, 0, 0, _NR_OFFSET),
    ]
    for index, (code, k) in enumerate(checks):
        # On a match skip the remaining checks and "allow", landing on "deny".
        program.append((code, len(checks) - index, 0, k))
    program += [
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.EACCES),
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_KILL_PROCESS),
    ]
    return program


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check() -> _Arch:
    """The running ABI, once the kernel is known to take the filter; SandboxError otherwise."""
    if not sys.platform.startswith("linux"):
        raise SandboxError("not Linux")
    arch = _arch_for(platform.machine())
    action = ctypes.c_uint32(_SECCOMP_RET_KILL_PROCESS)
    libc = _libc()
    if libc.syscall(
        ctypes.c_long(arch.seccomp),
        ctypes.c_uint(_SECCOMP_GET_ACTION_AVAIL),
        ctypes.c_uint(0),
        ctypes.byref(action),
    ):
        reason = os.strerror(ctypes.get_errno())
        raise SandboxError(f"kernel without seccomp filters (Linux >= 4.14): {reason}")
    return arch


def guard_supported() -> str | None:
    """None when :func:`install_network_guard` can work in this process, else a short reason
    ("not Linux", "unsupported architecture armv7l", ...)."""
    try:
        _check()
    except SandboxError as error:
        return str(error)
    return None


def install_network_guard() -> None:
    """Forbid this process, all its threads and every process it forks from then on to create
    a socket or an io_uring: ``socket()`` and ``io_uring_setup()`` fail with EACCES (Python's
    PermissionError). Sockets already open keep working. Irreversible.

    Sets no_new_privs first, which the kernel requires of an unprivileged filter: nothing this
    process executes can gain privileges any more (setuid bits are ignored). A system call
    made with another ABI (32-bit x86 on x86_64) kills the process. Raises SandboxError when
    the guard cannot be installed (see :func:`guard_supported`); the filter is in ``_program``.
    """
    arch = _check()
    libc = _libc()
    if libc.prctl(ctypes.c_int(_PR_SET_NO_NEW_PRIVS), *(ctypes.c_ulong(a) for a in (1, 0, 0, 0))):
        raise SandboxError(f"cannot set no_new_privs: {os.strerror(ctypes.get_errno())}")
    program = _program(arch)
    instructions = (_SockFilter * len(program))(*(_SockFilter(*op) for op in program))
    fprog = _SockFprog(len(program), instructions)
    # TSYNC applies the filter to every thread of the process, not just the calling one.
    result = libc.syscall(
        ctypes.c_long(arch.seccomp),
        ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    )
    if result < 0:
        raise SandboxError(f"cannot install the seccomp filter: {os.strerror(ctypes.get_errno())}")
    if result > 0:
        raise SandboxError(f"cannot install the seccomp filter: thread {result} refused it")


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process (SIGKILL) when ``parent``, the process that started
    it, ends; exit at once if it has already. Raises SandboxError where prctl is missing."""
    libc = _libc()
    if libc.prctl(
        ctypes.c_int(_PR_SET_PDEATHSIG),
        ctypes.c_ulong(signal.SIGKILL),
        *(ctypes.c_ulong(0) for _ in range(3)),
    ):
        raise SandboxError(f"cannot set the parent-death signal: {os.strerror(ctypes.get_errno())}")
    if os.getppid() != parent:
        os._exit(0)  # the parent ended before the signal was set
