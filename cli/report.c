/*  cli/report.c - benchmark reports: an aligned table for people, one JSON
    object for machines, from the same figures. The JSON names are the
    column names, documented in docs/BENCH.md. */
#include "cli.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

void report_init(report *r, const char *bench, const char *title, int argc, char **argv)
{
    memset(r, 0, sizeof *r);
    snprintf(r->bench, sizeof r->bench, "%s", bench);
    snprintf(r->title, sizeof r->title, "%s", title);
    size_t len = (size_t)snprintf(r->command, sizeof r->command, "spiketalk bench");
    for (int i = 0; i < argc && len < sizeof r->command; i++)
        len += (size_t)snprintf(r->command + len, sizeof r->command - len, " %s", argv[i]);
    for (int i = 0; i < REPORT_MAX_ROWS; i++)
        for (int j = 0; j < REPORT_MAX_COLS; j++)
            r->num[i][j] = NAN;
}

static void add_col(report *r, const char *name, const char *unit, int is_text)
{
    if (r->ncols == REPORT_MAX_COLS)
        return;
    report_col *c = &r->cols[r->ncols++];
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->unit, sizeof c->unit, "%s", unit ? unit : "");
    c->is_text = is_text;
}

void report_col_text(report *r, const char *name)
{
    add_col(r, name, NULL, 1);
}

void report_col_num(report *r, const char *name, const char *unit)
{
    add_col(r, name, unit, 0);
}

int report_row(report *r)
{
    return r->nrows < REPORT_MAX_ROWS ? r->nrows++ : REPORT_MAX_ROWS - 1;
}

static int col_index(const report *r, const char *col)
{
    for (int i = 0; i < r->ncols; i++)
        if (!strcmp(r->cols[i].name, col))
            return i;
    return -1;
}

void report_set_text(report *r, int row, const char *col, const char *value)
{
    int c = col_index(r, col);
    if (c >= 0 && row >= 0 && row < r->nrows)
        snprintf(r->text[row][c], sizeof r->text[row][c], "%s", value);
}

void report_set_num(report *r, int row, const char *col, double value)
{
    int c = col_index(r, col);
    if (c >= 0 && row >= 0 && row < r->nrows)
        r->num[row][c] = value;
}

void report_note(report *r, const char *fmt, ...)
{
    if (r->nnotes == REPORT_MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes[r->nnotes++], sizeof r->notes[0], fmt, ap);
    va_end(ap);
}

static void fmt_num(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (v == floor(v) && fabs(v) < 1e7)
        snprintf(buf, cap, "%.0f", v);
    else if (v != 0 && (fabs(v) >= 1e7 || fabs(v) < 1e-3))
        snprintf(buf, cap, "%.3g", v);
    else if (fabs(v) >= 100)
        snprintf(buf, cap, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(buf, cap, "%.1f", v);
    else
        snprintf(buf, cap, "%.3f", v);
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void print_json(const report *r, FILE *out)
{
    struct utsname u;
    uname(&u);
    fprintf(out, "{\"bench\": ");
    json_string(out, r->bench);
    fprintf(out, ", \"title\": ");
    json_string(out, r->title);
    fprintf(out, ", \"version\": \"%s\", \"command\": ", ST_VERSION_STRING);
    json_string(out, r->command);
    fprintf(out, ", \"machine\": {\"system\": ");
    json_string(out, u.sysname);
    fprintf(out, ", \"release\": ");
    json_string(out, u.release);
    fprintf(out, ", \"arch\": ");
    json_string(out, u.machine);
    fprintf(out, ", \"cpus\": %ld}, \"results\": [", sysconf(_SC_NPROCESSORS_ONLN));
    for (int i = 0; i < r->nrows; i++) {
        fprintf(out, "%s{", i ? ", " : "");
        for (int c = 0; c < r->ncols; c++) {
            fprintf(out, "%s\"%s\": ", c ? ", " : "", r->cols[c].name);
            if (r->cols[c].is_text)
                json_string(out, r->text[i][c]);
            else if (isnan(r->num[i][c]))
                fprintf(out, "null");
            else
                fprintf(out, "%.9g", r->num[i][c]);
        }
        fprintf(out, "}");
    }
    fprintf(out, "], \"notes\": [");
    for (int i = 0; i < r->nnotes; i++) {
        fprintf(out, "%s", i ? ", " : "");
        json_string(out, r->notes[i]);
    }
    fprintf(out, "]}\n");
}

void report_print(const report *r, bool json, FILE *out)
{
    if (json) {
        print_json(r, out);
        return;
    }
    char cell[REPORT_MAX_ROWS + 2][REPORT_MAX_COLS][80];
    int width[REPORT_MAX_COLS] = {0};
    for (int c = 0; c < r->ncols; c++) {
        snprintf(cell[0][c], sizeof cell[0][c], "%s", r->cols[c].name);
        snprintf(cell[1][c], sizeof cell[1][c], "%s%s%s", r->cols[c].unit[0] ? "(" : "",
                 r->cols[c].unit, r->cols[c].unit[0] ? ")" : "");
        for (int i = 0; i < r->nrows; i++) {
            if (r->cols[c].is_text)
                snprintf(cell[i + 2][c], sizeof cell[i + 2][c], "%s", r->text[i][c]);
            else
                fmt_num(cell[i + 2][c], sizeof cell[i + 2][c], r->num[i][c]);
        }
        for (int i = 0; i < r->nrows + 2; i++) {
            int w = (int)strlen(cell[i][c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    fprintf(out, "%s\n", r->title);
    for (int i = 0; i < r->nrows + 2; i++) {
        if (i == 2) {
            for (int c = 0; c < r->ncols; c++)
                for (int k = 0; k < width[c] + 2; k++)
                    fputc('-', out);
            fputc('\n', out);
        }
        for (int c = 0; c < r->ncols; c++) {
            if (r->cols[c].is_text)
                fprintf(out, "%-*s  ", width[c], cell[i][c]);
            else
                fprintf(out, "%*s  ", width[c], cell[i][c]);
        }
        fputc('\n', out);
    }
    for (int i = 0; i < r->nnotes; i++)
        fprintf(out, "  note: %s\n", r->notes[i]);
    fprintf(out, "  command: %s\n\n", r->command);
}

/* ---- cumulative distributions as SVG ------------------------------------------ */

/* A tick step of 1, 2 or 5 times a power of ten, about span / 8. */
static double tick_step(double span)
{
    double raw = span / 8, p = pow(10, floor(log10(raw > 0 ? raw : 1))), m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
}

int report_cdf_svg(const char *path, const char *title, const char *x_label,
                   const report_cdf_series *series, int n_series, const report_cdf_mark *marks,
                   int n_marks, double x_lo, double x_hi)
{
    double **sorted = calloc((size_t)(n_series > 0 ? n_series : 1), sizeof *sorted);
    if (!sorted)
        return st_error(ST_ERR_NOMEM, "out of memory for the plot '%s'", path);
    double xmin = 0, xmax = 0;
    for (int k = 0; k < n_series; k++) {
        const int n = series[k].n;
        if (!(sorted[k] = cli_sorted_copy(series[k].v, n)))
            continue;
        xmin = fmin(xmin, cli_rank_of_sorted(sorted[k], n, 5));
        xmax = fmax(xmax, cli_rank_of_sorted(sorted[k], n, 99));
    }
    for (int k = 0; k < n_marks; k++)
        xmax = fmax(xmax, marks[k].x * 1.1);
    xmin = fmin(fmax(xmin, x_lo), x_hi - 1);
    xmax = fmin(fmax(xmax, xmin + 1), x_hi);
    const double step = tick_step(xmax - xmin);
    xmin = floor(xmin / step) * step;
    xmax = ceil(xmax / step) * step;
    FILE *f = fopen(path, "w");
    if (!f) {
        for (int k = 0; k < n_series; k++)
            free(sorted[k]);
        free(sorted);
        return st_error(ST_ERR_IO, "cannot create the plot '%s'", path);
    }
    const int W = 960, H = 600, L = 70, R = 320, T = 40, B = 60;
    const double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + pw * (fmin(fmax((x), xmin), xmax) - xmin) / (xmax - xmin))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\">%s</text>\n", L, title);
    for (double x = xmin; x <= xmax + step / 2; x += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                PX(x), T, PX(x), T + ph, fabs(x) < step / 2 ? "#999" : "#ddd");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", PX(x),
                T + ph + 16, fabs(x) < step / 2 ? 0.0 : x);
    }
    for (int q = 0; q <= 10; q += 2) {
        double py = T + ph * (1 - q / 10.0);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L,
                py, L + pw, py);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", L - 6, py + 4,
                q / 10.0);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", L + pw / 2,
            H - 18, x_label);
    for (int k = 0; k < n_marks; k++) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
                   "stroke-dasharray=\"1,3\"/>\n", PX(marks[k].x), T, PX(marks[k].x), T + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"#444\">%s</text>\n",
                PX(marks[k].x) + 2, T + 10 + 12 * k, marks[k].label);
    }
    int legend = 0;
    for (int k = 0; k < n_series; k++) {
        const double *s = sorted[k];
        const int n = series[k].n;
        if (!s)
            continue;
        const char *dash = series[k].dashed ? " stroke-dasharray=\"6,4\"" : "";
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                series[k].colour, dash);
        const int of = series[k].of > n ? series[k].of : n;
        double prev_y = T + ph;
        fprintf(f, "%.1f,%.1f ", (double)L, prev_y);
        for (int i = 0; i < n; i++) {
            double y = T + ph * (1 - (double)(i + 1) / of);
            fprintf(f, "%.1f,%.1f %.1f,%.1f ", PX(s[i]), prev_y, PX(s[i]), y);
            prev_y = y;
        }
        fprintf(f, "%.1f,%.1f\"/>\n", L + pw, prev_y);
        double ly = T + 14 + 18 * legend++;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s/>\n",
                L + pw + 14, ly - 4, L + pw + 44, ly - 4, series[k].colour, dash);
        char of_text[32] = "";
        if (of > n)
            snprintf(of_text, sizeof of_text, " of %d", of);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s (n %d%s, p50 %.0f)</text>\n", L + pw + 50,
                ly, series[k].name, n, of_text, cli_rank_of_sorted(s, n, 50));
    }
#undef PX
    fprintf(f, "</svg>\n");
    for (int k = 0; k < n_series; k++)
        free(sorted[k]);
    free(sorted);
    return fclose(f) ? st_error(ST_ERR_IO, "cannot write the plot '%s'", path) : ST_OK;
}
