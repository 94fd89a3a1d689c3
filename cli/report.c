/*  cli/report.c - benchmark reports: an aligned table for people, one JSON
    object for machines, from the same figures. The JSON names are the
    column names, documented in docs/BENCH.md. */
#include "cli.h"

#include <math.h>
#include <stdarg.h>
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
    if (r->nnotes == 4)
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
