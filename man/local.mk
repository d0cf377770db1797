# automake fragment included by Makefile.am: the manual page.
# tcp-multiplexer.8 is made from tcp-multiplexer.8.in with the version and
# the installation paths filled in; the .in is what gets edited.
man8_MANS = man/tcp-multiplexer.8
EXTRA_DIST += man/tcp-multiplexer.8.in
CLEANFILES += man/tcp-multiplexer.8

man_edit = sed \
	-e 's|@VERSION[@]|$(VERSION)|g' \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@docdir[@]|$(docdir)|g' \
	-e 's|@systemdsystemunitdir[@]|$(systemdsystemunitdir)|g'

man/tcp-multiplexer.8: $(srcdir)/man/tcp-multiplexer.8.in Makefile
	$(AM_V_GEN)$(MKDIR_P) man && $(man_edit) $(srcdir)/man/tcp-multiplexer.8.in >$@.tmp && mv -f $@.tmp $@
