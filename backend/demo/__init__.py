"""The embedded demo: an asyncssh SFTP server on 127.0.0.1 with realistic sample cases."""
