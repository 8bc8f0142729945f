"""sysinfo(2) answered with the container's figures, by seccomp user notification.

Programs that never read /proc (glibc's getloadavg and sysconf(_SC_PHYS_PAGES), GNU sort,
BusyBox free and uptime) call sysinfo(2).  containerfs-runtime adds a seccomp rule that
sends the call to a listener socket; a holder process there keeps the listener
descriptors and asks the daemon for each answer (see holder.py for why two processes).
"""
