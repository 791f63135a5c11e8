"""WSGI entry point for gunicorn (`gunicorn -c gunicorn.conf.py wsgi:app`)."""
import logging

from app import create_app
from core.logs import configure_logging
from core.settings import load

settings = load()
configure_logging(settings.log_format, settings.log_level, settings.secrets())
# gevent-websocket logs every request at INFO (an access log we did not ask for).
logging.getLogger("geventwebsocket.handler").setLevel(logging.WARNING)
app = create_app(settings)
