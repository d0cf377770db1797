# automake fragment included by Makefile.am: the files that run the daemon
# as a service (systemd units, an example configuration, bash completion),
# the container files, and the test that keeps the documentation honest.

# Generated from their .in with the installation paths filled in.
contrib_generated = \
	contrib/tcp-multiplexer.service \
	contrib/tcp-multiplexer@.service \
	contrib/example.conf \
	contrib/inverter.conf
CLEANFILES += $(contrib_generated) contrib/completion/tcp-multiplexer

contrib_edit = sed \
	-e 's|@VERSION[@]|$(VERSION)|g' \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@docdir[@]|$(docdir)|g'

contrib/tcp-multiplexer.service: $(srcdir)/contrib/tcp-multiplexer.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib && $(contrib_edit) $(srcdir)/contrib/tcp-multiplexer.service.in >$@.tmp && mv -f $@.tmp $@
contrib/tcp-multiplexer@.service: $(srcdir)/contrib/tcp-multiplexer@.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib && $(contrib_edit) $(srcdir)/contrib/tcp-multiplexer@.service.in >$@.tmp && mv -f $@.tmp $@
contrib/example.conf: $(srcdir)/contrib/example.conf.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib && $(contrib_edit) $(srcdir)/contrib/example.conf.in >$@.tmp && mv -f $@.tmp $@
contrib/inverter.conf: $(srcdir)/contrib/inverter.conf.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib && $(contrib_edit) $(srcdir)/contrib/inverter.conf.in >$@.tmp && mv -f $@.tmp $@
# Installed under the command's name, as bash-completion looks it up.
contrib/completion/tcp-multiplexer: $(srcdir)/contrib/tcp-multiplexer.bash-completion
	$(AM_V_GEN)$(MKDIR_P) contrib/completion && cp $(srcdir)/contrib/tcp-multiplexer.bash-completion $@

# systemdsystemunitdir comes from configure (--with-systemdsystemunitdir).
systemdsystemunit_DATA = contrib/tcp-multiplexer.service contrib/tcp-multiplexer@.service

# A commented template for the instances of tcp-multiplexer@.service.
pkgsysconfdir = $(sysconfdir)/tcp-multiplexer
pkgsysconf_DATA = contrib/example.conf

# bash-completion's own directory would be
# `pkg-config --variable=completionsdir bash-completion`; override with
# make install bashcompletiondir=DIR when it differs.
bashcompletiondir = $(datadir)/bash-completion/completions
bashcompletion_DATA = contrib/completion/tcp-multiplexer

examplesdir = $(docdir)/examples
examples_DATA = contrib/inverter.conf
# serial-port.conf: the drop-in that gives one instance its serial port.
dist_examples_DATA = contrib/Dockerfile contrib/compose.yaml contrib/serial-port.conf

# The System V init script and its defaults are installed by the Debian
# package (debian/ links to them), not by make install: /etc/init.d and
# /etc/default are Debian's conventions.
EXTRA_DIST += \
	contrib/tcp-multiplexer.service.in \
	contrib/tcp-multiplexer@.service.in \
	contrib/example.conf.in \
	contrib/inverter.conf.in \
	contrib/tcp-multiplexer.bash-completion \
	contrib/tcp-multiplexer.init \
	contrib/tcp-multiplexer.default \
	contrib/ci-packaging.sh

# The Debian packaging travels with the release tarball: a native package's
# source is the tarball itself.
EXTRA_DIST += \
	debian/changelog \
	debian/control \
	debian/copyright \
	debian/rules \
	debian/source/format \
	debian/tcp-multiplexer.default \
	debian/tcp-multiplexer.init \
	debian/docs \
	debian/postinst \
	debian/postrm \
	debian/prerm

# Every option the binary prints is in the man page and README, and the
# completion offers every command and protocol.
TESTS += tests/check-docs.sh
EXTRA_DIST += tests/check-docs.sh

# Log priorities as journald sees them, and --syslog's failed start on
# stderr; the boot test (run by .ci/run as root, not by make check) checks
# the units under a real systemd in a container.
TESTS += tests/systemd/check-log-priorities.sh
EXTRA_DIST += tests/systemd/check-log-priorities.sh tests/systemd/boot-test.sh
